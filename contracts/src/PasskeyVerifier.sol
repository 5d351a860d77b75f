// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {SignerKind, Signers} from "./Signers.sol";

/// @title PasskeyVerifier
/// @notice P-256 and WebAuthn verification (see `Signers`) as a contract of its own, which each
/// SessionKeyAccount implementation deploys from its constructor and calls with STATICCALL. It
/// keeps the account under the 24,576-byte code limit: the Solidity P-256 arithmetic and the
/// WebAuthn checks are a fifth of the code. It holds no storage and reads nothing but its
/// arguments (and the precompile, where the caller says the chain serves it), so calling it
/// during validation stays within ERC-7562.
contract PasskeyVerifier {
    /// @notice Whether `signature` by the P-256 key `(x, y)` of `kind` (P256 or WebAuthn)
    /// signs `message`. Never reverts on malformed input.
    function verify(
        SignerKind kind,
        bytes32 x,
        bytes32 y,
        bytes32 message,
        bytes calldata signature,
        bool precompile
    ) external view returns (bool) {
        if (kind == SignerKind.Secp256k1) return false;
        return Signers.verify(kind, address(0), x, y, message, signature, precompile);
    }
}
