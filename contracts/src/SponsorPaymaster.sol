// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {BasePaymaster} from "@account-abstraction/contracts/core/BasePaymaster.sol";
import {_packValidationData} from "@account-abstraction/contracts/core/Helpers.sol";
import {IEntryPoint} from "@account-abstraction/contracts/interfaces/IEntryPoint.sol";
import {
    PackedUserOperation
} from "@account-abstraction/contracts/interfaces/PackedUserOperation.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";

/// @title SponsorPaymaster
/// @notice An ERC-4337 (EntryPoint v0.8) verifying paymaster: it pays, from its EntryPoint
/// deposit, for exactly the user operations that an off-chain `signer` has approved.
/// The signer approves one operation at a time, for a validity window, by signing
/// (EIP-191 personal-sign) the hash that `getHash` returns. That hash binds:
/// - every field of the op that decides what runs and what it may cost, including the
///   paymaster's own gas limits, so an approval cannot be stretched to another op or to
///   larger gas limits than the signer agreed to pay for;
/// - the nonce, so an approval is spent with its op and never replays;
/// - the chain id and this contract's address, so an approval is worth nothing on another
///   chain or with another paymaster that trusts the same signer;
/// - a fixed domain tag, so a signature the signer makes for anything else can never be taken
///   for an approval.
/// The window is returned in validationData and the EntryPoint enforces it (no
/// `block.timestamp` read during validation, as ERC-7562 requires). The EntryPoint accepts the
/// op when `validAfter < block.timestamp <= validUntil`; a validUntil of 0 means no expiry.
/// The signer lives in storage so the owner can rotate it; under ERC-7562 a paymaster that
/// reads its own storage during validation must be staked to be accepted by public bundlers
/// (see `addStake`).
contract SponsorPaymaster is BasePaymaster {
    /// @notice Tags every approval hash, so the signer's approvals form their own domain.
    bytes32 public constant SPONSOR_DOMAIN = keccak256("latchkey.SponsorPaymaster.v1");

    /// @dev Layout of what follows the static fields (paymaster, verification and postOp gas
    /// limits) in paymasterAndData: `validUntil (6) | validAfter (6) | signature (65)`.
    uint256 private constant VALID_UNTIL_OFFSET = PAYMASTER_DATA_OFFSET;
    uint256 private constant VALID_AFTER_OFFSET = VALID_UNTIL_OFFSET + 6;
    uint256 private constant SIGNATURE_OFFSET = VALID_AFTER_OFFSET + 6;
    uint256 private constant SIGNATURE_LENGTH = 65;
    /// @notice The only paymasterAndData length this paymaster accepts: 129 bytes.
    uint256 public constant PAYMASTER_AND_DATA_LENGTH = SIGNATURE_OFFSET + SIGNATURE_LENGTH;

    /// @notice The address whose signature approves an operation for sponsorship.
    address public signer;

    /// @notice The approving signer changed; approvals by `previousSigner` no longer work.
    event SignerChanged(address indexed previousSigner, address indexed newSigner);

    /// @notice The signer cannot be address(0).
    error InvalidSigner(address signer);
    /// @notice paymasterAndData is `actual` bytes long; a sponsored op needs `expected` (129).
    error InvalidPaymasterAndDataLength(uint256 expected, uint256 actual);

    /// @param entryPoint_ The EntryPoint this paymaster serves and holds its deposit in.
    /// @param owner_ Who may rotate the signer and move the deposit and stake.
    /// @param signer_ The first approving signer.
    constructor(IEntryPoint entryPoint_, address owner_, address signer_)
        BasePaymaster(entryPoint_)
    {
        // BasePaymaster makes the deployer the owner; hand the paymaster to `owner_` at once so
        // a deployer key (or a CREATE2 factory) never keeps control of the deposit.
        if (owner_ == address(0)) revert Ownable.OwnableInvalidOwner(owner_);
        _transferOwnership(owner_);
        _setSigner(signer_);
    }

    /// @notice Replaces the approving signer. Approvals by the old signer stop working at once,
    /// even those whose window is still open.
    function setSigner(address newSigner) external onlyOwner {
        _setSigner(newSigner);
    }

    // ---------------------------------------------------------------------------------------
    // Views
    // ---------------------------------------------------------------------------------------

    /// @notice The hash the signer approves for `userOp` over the window, before the EIP-191
    /// prefix: the signer signs `toEthSignedMessageHash(getHash(...))`. It is the keccak256 of
    /// the flat `abi.encode` of: SPONSOR_DOMAIN, sender, nonce, keccak256(initCode),
    /// keccak256(callData), accountGasLimits, paymasterAndData[20:52] (the paymaster's
    /// verification and postOp gas limits, as one bytes32), preVerificationGas, gasFees,
    /// validUntil, validAfter, block.chainid, address(this).
    /// Of `userOp.paymasterAndData` only bytes 20 to 52 are read, so the caller may pass the
    /// 52 static bytes alone or followed by placeholder data; it must hold at least those, or
    /// the call reverts with `InvalidPaymasterAndDataLength`. The paymaster address in bytes
    /// 0 to 20 is covered by address(this), and neither signature is part of the hash (the
    /// account signs after the paymaster, over a userOpHash that covers paymasterAndData).
    function getHash(PackedUserOperation calldata userOp, uint48 validUntil, uint48 validAfter)
        public
        view
        returns (bytes32)
    {
        bytes calldata paymasterAndData = userOp.paymasterAndData;
        if (paymasterAndData.length < PAYMASTER_DATA_OFFSET) {
            revert InvalidPaymasterAndDataLength(PAYMASTER_AND_DATA_LENGTH, paymasterAndData.length);
        }
        return keccak256(
            abi.encode(
                SPONSOR_DOMAIN,
                userOp.sender,
                userOp.nonce,
                keccak256(userOp.initCode),
                keccak256(userOp.callData),
                userOp.accountGasLimits,
                // the paymaster verification and postOp gas limits, 16 bytes each
                bytes32(paymasterAndData[PAYMASTER_VALIDATION_GAS_OFFSET:PAYMASTER_DATA_OFFSET]),
                userOp.preVerificationGas,
                userOp.gasFees,
                validUntil,
                validAfter,
                block.chainid,
                address(this)
            )
        );
    }

    /// @notice Splits `paymasterAndData` into the approval window and the signer's signature.
    /// Reverts with `InvalidPaymasterAndDataLength` unless it is exactly
    /// `PAYMASTER_AND_DATA_LENGTH` bytes long: a fixed length leaves no room for data that the
    /// signature does not cover.
    /// @return validUntil Last second the approval is good for (0: no expiry), bytes 52 to 58.
    /// @return validAfter The approval is good only after this second, bytes 58 to 64.
    /// @return signature The signer's 65-byte `r | s | v` signature, bytes 64 to 129.
    function parsePaymasterData(bytes calldata paymasterAndData)
        public
        pure
        returns (uint48 validUntil, uint48 validAfter, bytes calldata signature)
    {
        if (paymasterAndData.length != PAYMASTER_AND_DATA_LENGTH) {
            revert InvalidPaymasterAndDataLength(PAYMASTER_AND_DATA_LENGTH, paymasterAndData.length);
        }
        validUntil = uint48(bytes6(paymasterAndData[VALID_UNTIL_OFFSET:VALID_AFTER_OFFSET]));
        validAfter = uint48(bytes6(paymasterAndData[VALID_AFTER_OFFSET:SIGNATURE_OFFSET]));
        signature = paymasterAndData[SIGNATURE_OFFSET:];
    }

    // ---------------------------------------------------------------------------------------
    // ERC-4337 validation
    // ---------------------------------------------------------------------------------------

    /// @dev A wrong signature returns SIG_VALIDATION_FAILED instead of reverting, so that gas
    /// estimation with a placeholder signature still works; the EntryPoint turns it into AA34
    /// in a real bundle. Only a malformed paymasterAndData reverts (AA33). The context is
    /// empty: the whole cost is settled from the deposit and no postOp runs.
    function _validatePaymasterUserOp(PackedUserOperation calldata userOp, bytes32, uint256)
        internal
        view
        override
        returns (bytes memory context, uint256 validationData)
    {
        (uint48 validUntil, uint48 validAfter, bytes calldata signature) =
            parsePaymasterData(userOp.paymasterAndData);
        bytes32 digest =
            MessageHashUtils.toEthSignedMessageHash(getHash(userOp, validUntil, validAfter));
        (address recovered, ECDSA.RecoverError error,) = ECDSA.tryRecover(digest, signature);
        // `signer` is never address(0), so a failed recovery can never match it.
        bool approved = error == ECDSA.RecoverError.NoError && recovered == signer;
        return ("", _packValidationData(!approved, validUntil, validAfter));
    }

    // ---------------------------------------------------------------------------------------
    // Internals
    // ---------------------------------------------------------------------------------------

    /// @dev address(0) is what a failed recovery yields, so it must never stand for the signer.
    function _setSigner(address newSigner) private {
        if (newSigner == address(0)) revert InvalidSigner(newSigner);
        emit SignerChanged(signer, newSigner);
        signer = newSigner;
    }
}
