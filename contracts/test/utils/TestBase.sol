// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @notice The Foundry cheatcodes this suite uses (Foundry 1.x). There is no forge-std here, so
/// the interface lists only what the tests call.
interface Vm {
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    // Environment
    function warp(uint256 newTimestamp) external;
    function deal(address account, uint256 newBalance) external;
    function fee(uint256 newBasefee) external;
    function etch(address target, bytes calldata newRuntimeBytecode) external;
    function prank(address msgSender) external;
    function prank(address msgSender, address txOrigin) external;
    function startPrank(address msgSender) external;
    function startPrank(address msgSender, address txOrigin) external;
    function stopPrank() external;
    function label(address account, string calldata newLabel) external;
    function getCode(string calldata artifactPath) external view returns (bytes memory);
    function chainId(uint256 newChainId) external;
    /// @dev Marks `target` and its storage as not accessed, so the next access pays the cold
    /// price, as it would in a transaction of its own.
    function cool(address target) external;
    function snapshotState() external returns (uint256 snapshotId);
    function revertToState(uint256 snapshotId) external returns (bool success);

    // Keys
    function addr(uint256 privateKey) external pure returns (address);
    function sign(uint256 privateKey, bytes32 digest)
        external
        pure
        returns (uint8 v, bytes32 r, bytes32 s);
    /// @dev A P-256 signature over the digest `digest` (Foundry returns the low-s form).
    function signP256(uint256 privateKey, bytes32 digest)
        external
        pure
        returns (bytes32 r, bytes32 s);
    function publicKeyP256(uint256 privateKey) external pure returns (uint256 x, uint256 y);

    // Expectations
    function expectRevert() external;
    function expectRevert(bytes4 revertData) external;
    function expectRevert(bytes calldata revertData) external;
    function expectEmit(
        bool checkTopic1,
        bool checkTopic2,
        bool checkTopic3,
        bool checkData,
        address emitter
    ) external;
    function recordLogs() external;
    function getRecordedLogs() external returns (Log[] memory);
    function assume(bool condition) external pure;

    // Assertions
    function assertTrue(bool condition, string calldata error) external pure;
    function assertFalse(bool condition, string calldata error) external pure;
    function assertEq(uint256 left, uint256 right, string calldata error) external pure;
    function assertEq(address left, address right, string calldata error) external pure;
    function assertEq(bytes32 left, bytes32 right, string calldata error) external pure;
    function assertEq(bool left, bool right, string calldata error) external pure;
    function assertEq(bytes calldata left, bytes calldata right, string calldata error)
        external
        pure;
    function assertNotEq(address left, address right, string calldata error) external pure;
    function assertNotEq(bytes32 left, bytes32 right, string calldata error) external pure;
    function assertGt(uint256 left, uint256 right, string calldata error) external pure;
    function assertLt(uint256 left, uint256 right, string calldata error) external pure;
    function assertLe(uint256 left, uint256 right, string calldata error) external pure;
}

/// @notice `console.log(string)` and `console.log(string,uint256)` through Foundry's console
/// address, so `forge test -vv` prints them.
library console {
    address internal constant CONSOLE_ADDRESS = 0x000000000000000000636F6e736F6c652e6c6f67;

    function log(string memory line) internal view {
        (bool ok,) = CONSOLE_ADDRESS.staticcall(abi.encodeWithSignature("log(string)", line));
        ok;
    }

    function log(string memory label, uint256 value) internal view {
        (bool ok,) =
            CONSOLE_ADDRESS.staticcall(abi.encodeWithSignature("log(string,uint256)", label, value));
        ok;
    }
}

/// @notice A minimal stand-in for forge-std's Test: the cheatcode handle and `bound`.
abstract contract TestBase {
    Vm internal constant vm = Vm(0x7109709ECfa91a80626fF3989D68f67F5b1DD12D);

    /// @dev Maps `x` into [min, max] without rejecting inputs, so fuzz runs are never wasted.
    function bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        require(min <= max, "bound: min > max");
        if (x >= min && x <= max) return x;
        uint256 size = max - min;
        if (size == type(uint256).max) return x;
        return min + (x % (size + 1));
    }
}
