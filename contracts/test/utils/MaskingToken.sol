// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @notice An old-style ERC-20, as compilers without ABI decoder v2 made them: it reads its
/// address parameters as `and(word, 2^160 - 1)` and never refuses dirty high bits. A word
/// `dirt ‖ someone` is `someone` to this token, whatever a check that compares whole words
/// concluded. `transfer`, `transferFrom` and `approve` are served by the fallback, which reads
/// the raw calldata the way such a token does.
contract MaskingToken {
    bytes4 private constant TRANSFER = 0xa9059cbb; // transfer(address,uint256)
    bytes4 private constant TRANSFER_FROM = 0x23b872dd; // transferFrom(address,address,uint256)
    bytes4 private constant APPROVE = 0x095ea7b3; // approve(address,uint256)

    mapping(address holder => uint256) public balanceOf;
    mapping(address holder => mapping(address spender => uint256)) public allowance;

    function mint(address to, uint256 amount) external {
        balanceOf[to] += amount;
    }

    fallback(bytes calldata data) external returns (bytes memory) {
        bytes4 selector = msg.sig;
        if (selector == TRANSFER) {
            _move(msg.sender, _maskedAddress(data, 0), _word(data, 1));
        } else if (selector == TRANSFER_FROM) {
            address from = _maskedAddress(data, 0);
            uint256 amount = _word(data, 2);
            if (from != msg.sender) allowance[from][msg.sender] -= amount;
            _move(from, _maskedAddress(data, 1), amount);
        } else if (selector == APPROVE) {
            allowance[msg.sender][_maskedAddress(data, 0)] = _word(data, 1);
        } else {
            revert();
        }
        return abi.encode(true);
    }

    function _move(address from, address to, uint256 amount) private {
        balanceOf[from] -= amount;
        balanceOf[to] += amount;
    }

    function _word(bytes calldata data, uint256 index) private pure returns (uint256 word) {
        uint256 at = 4 + 32 * index;
        require(data.length >= at + 32, "short calldata");
        word = uint256(bytes32(data[at:at + 32]));
    }

    /// @dev The low 160 bits of parameter `index`, dirty bits discarded.
    function _maskedAddress(bytes calldata data, uint256 index) private pure returns (address a) {
        uint256 word = _word(data, index);
        assembly ("memory-safe") {
            a := and(word, 0xffffffffffffffffffffffffffffffffffffffff)
        }
    }
}
