// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IEntryPoint} from "@account-abstraction/contracts/interfaces/IEntryPoint.sol";
import {IPaymaster} from "@account-abstraction/contracts/interfaces/IPaymaster.sol";
import {
    PackedUserOperation
} from "@account-abstraction/contracts/interfaces/PackedUserOperation.sol";

/// @notice Sponsors every operation from its EntryPoint deposit. Only for tests that need an op
/// the account does not pay for.
contract AcceptAllPaymaster is IPaymaster {
    IEntryPoint internal immutable ENTRY_POINT;

    constructor(IEntryPoint entryPoint) {
        ENTRY_POINT = entryPoint;
    }

    function validatePaymasterUserOp(PackedUserOperation calldata, bytes32, uint256)
        external
        view
        returns (bytes memory context, uint256 validationData)
    {
        require(msg.sender == address(ENTRY_POINT), "only the EntryPoint");
        return ("", 0);
    }

    function postOp(PostOpMode, bytes calldata, uint256, uint256) external view {
        require(msg.sender == address(ENTRY_POINT), "only the EntryPoint");
    }
}
