// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {SessionKeyAccount} from "./SessionKeyAccount.sol";
import {Signer, SignerKind, Signers} from "./Signers.sol";
import {IEntryPoint} from "@account-abstraction/contracts/interfaces/IEntryPoint.sol";
import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";

/// @title SessionKeyAccountFactory
/// @notice Deploys SessionKeyAccounts as EIP-1167 clones at counterfactual CREATE2 addresses
/// derived from (owner, salt), for an Ethereum owner or a passkey owner alike. A user
/// operation's initCode calls `createAccount`, so an account deploys itself in its first
/// operation.
contract SessionKeyAccountFactory {
    /// @notice The logic every clone delegates to.
    SessionKeyAccount public immutable accountImplementation;

    event AccountCreated(
        address indexed account, address indexed owner, SignerKind ownerKind, uint256 salt
    );

    constructor(IEntryPoint entryPoint) {
        accountImplementation = new SessionKeyAccount(entryPoint);
    }

    /// @notice Deploys the account of (owner, salt), or returns it when it already exists, so the
    /// call is idempotent. Anyone may call it: the owner is part of the CREATE2 salt and the
    /// clone is initialized in the same call, so nobody can claim someone else's address.
    function createAccount(Signer calldata owner, uint256 salt)
        external
        returns (SessionKeyAccount account)
    {
        address predicted = getAddress(owner, salt);
        if (predicted.code.length != 0) return SessionKeyAccount(payable(predicted));
        account = SessionKeyAccount(
            payable(Clones.cloneDeterministic(
                    address(accountImplementation), _cloneSalt(owner, salt)
                ))
        );
        account.initialize(owner);
        emit AccountCreated(address(account), account.owner(), owner.kind, salt);
    }

    /// @notice The address `createAccount(owner, salt)` deploys to, before or after deployment.
    function getAddress(Signer calldata owner, uint256 salt) public view returns (address) {
        return
            Clones.predictDeterministicAddress(
                address(accountImplementation), _cloneSalt(owner, salt)
            );
    }

    /// @dev The kind is part of the salt, so an Ethereum owner whose address equals a passkey's
    /// id cannot take that passkey's address. `createAccount` never deploys for a malformed
    /// owner, since `initialize` refuses it (`getAddress` of a P-256 owner shorter than 64
    /// bytes reverts).
    function _cloneSalt(Signer calldata owner, uint256 salt) private pure returns (bytes32) {
        return keccak256(abi.encode(owner.kind, Signers.id(owner), salt));
    }
}
