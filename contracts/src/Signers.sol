// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Base64} from "@openzeppelin/contracts/utils/Base64.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {P256} from "@openzeppelin/contracts/utils/cryptography/P256.sol";
import {WebAuthn} from "@openzeppelin/contracts/utils/cryptography/WebAuthn.sol";

/// @notice The kinds of key that may own an account or act as a session key.
/// - `Secp256k1`: an Ethereum key; its public form is its 20-byte address.
/// - `P256`: a raw P-256 key signing as WebCrypto's ECDSA does, over SHA-256 of the message;
///   its signature is the 64 bytes `r ‖ s`.
/// - `WebAuthn`: a P-256 WebAuthn credential (a passkey); it signs an assertion whose
///   challenge is the message.
/// Both P-256 kinds give their public key as the 64 bytes `x ‖ y`.
enum SignerKind {
    Secp256k1,
    P256,
    WebAuthn
}

/// @notice A public key and its kind, as an account's owner or a session key is given.
struct Signer {
    SignerKind kind;
    bytes key;
}

/// @title Signers
/// @notice Identifies and verifies the three signer kinds.
///
/// Every signer has a 160-bit id. A secp256k1 key's id is its address. A P-256 key's id is the
/// low 160 bits of `keccak256(uint8(kind) ‖ x ‖ y)`, so the same point used as a raw key and as
/// a WebAuthn credential has two ids. The id is what session-key nonce lanes carry in their top
/// 160 bits.
///
/// P-256 verification uses the precompile at 0x100 (RIP-7212, EIP-7951) when the caller says
/// the chain serves it, and OpenZeppelin's Solidity `P256` otherwise. The caller decides once,
/// at deployment, with `hasP256Precompile`; verification itself never probes 0x100. That keeps
/// validation within ERC-7562: OP-062 admits the P-256 precompile only where the chain has it,
/// and OP-041 forbids calling an address without code, which 0x100 is where it is absent.
/// High-s signatures, which WebCrypto may produce, are normalised to low s first, so both paths
/// accept exactly the same signatures.
library Signers {
    /// @dev The order of P-256 and half of it.
    uint256 internal constant P256_N =
        0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551;
    uint256 internal constant P256_HALF_N = P256_N / 2;

    address internal constant P256_PRECOMPILE = address(0x100);

    /// @dev Authenticator data flags: user present, user verified, backup eligible, backed up.
    bytes1 internal constant FLAG_UP = 0x01;
    bytes1 internal constant FLAG_UV = 0x04;
    bytes1 internal constant FLAG_BE = 0x08;
    bytes1 internal constant FLAG_BS = 0x10;

    /// @notice Whether `signer` is well formed: a non-zero address, or a point on P-256.
    function isValid(Signer calldata signer) internal pure returns (bool) {
        if (signer.kind == SignerKind.Secp256k1) {
            return signer.key.length == 20 && bytes20(signer.key) != bytes20(0);
        }
        if (signer.key.length != 64) return false;
        (bytes32 x, bytes32 y) = point(signer.key);
        return P256.isValidPublicKey(x, y);
    }

    /// @notice The 160-bit id of `signer` (see the library's notice).
    function id(Signer calldata signer) internal pure returns (address) {
        if (signer.kind == SignerKind.Secp256k1) return address(bytes20(signer.key));
        (bytes32 x, bytes32 y) = point(signer.key);
        return p256Id(signer.kind, x, y);
    }

    /// @notice The id of a P-256 key of `kind`.
    function p256Id(SignerKind kind, bytes32 x, bytes32 y) internal pure returns (address) {
        return address(uint160(uint256(keccak256(abi.encodePacked(uint8(kind), x, y)))));
    }

    /// @notice The coordinates of a 64-byte `x ‖ y` public key.
    function point(bytes calldata key) internal pure returns (bytes32 x, bytes32 y) {
        x = bytes32(key[:32]);
        y = bytes32(key[32:64]);
    }

    /// @notice Whether `signature` by the key of `kind` (`keyId` for secp256k1, the point
    /// `(x, y)` for P-256 kinds) signs `message`. Never reverts on malformed input.
    function verify(
        SignerKind kind,
        address keyId,
        bytes32 x,
        bytes32 y,
        bytes32 message,
        bytes calldata signature,
        bool precompile
    ) internal view returns (bool) {
        if (kind == SignerKind.Secp256k1) {
            return recover(message, signature) == keyId;
        }
        if (kind == SignerKind.P256) {
            if (signature.length != 64) return false;
            return verifyP256(
                sha256(abi.encodePacked(message)),
                bytes32(signature[:32]),
                bytes32(signature[32:64]),
                x,
                y,
                precompile
            );
        }
        return verifyWebAuthn(message, signature, x, y, precompile);
    }

    /// @notice ECDSA recovery that never reverts; address(0) means "no valid signature".
    function recover(bytes32 hash, bytes calldata signature) internal pure returns (address) {
        (address signer, ECDSA.RecoverError error,) = ECDSA.tryRecover(hash, signature);
        return error == ECDSA.RecoverError.NoError ? signer : address(0);
    }

    /// @notice Verifies a P-256 signature over the digest `h`, with `s` normalised to low s.
    function verifyP256(bytes32 h, bytes32 r, bytes32 s, bytes32 x, bytes32 y, bool precompile)
        internal
        view
        returns (bool)
    {
        if (uint256(s) > P256_HALF_N && uint256(s) < P256_N) s = bytes32(P256_N - uint256(s));
        if (!precompile) return P256.verifySolidity(h, r, s, x, y);
        // Range and curve checks first: the precompile answers nothing for bad input, and the
        // Solidity path refuses the same input up front.
        if (uint256(r) == 0 || uint256(r) >= P256_N || uint256(s) == 0) return false;
        if (!P256.isValidPublicKey(x, y)) return false;
        return callPrecompile(h, r, s, x, y);
    }

    /// @notice Verifies a WebAuthn assertion over `challenge`: its type is "webauthn.get", its
    /// challenge is the base64url of `challenge`, the user was present and verified, a
    /// backed-up credential is backup-eligible, and the P-256 signature covers
    /// `authenticatorData ‖ sha256(clientDataJSON)`. The assertion is OpenZeppelin's
    /// `WebAuthnAuth` ABI-encoded: (r, s, challengeIndex, typeIndex, authenticatorData,
    /// clientDataJSON).
    function verifyWebAuthn(
        bytes32 challenge,
        bytes calldata assertion,
        bytes32 x,
        bytes32 y,
        bool precompile
    ) internal view returns (bool) {
        (bool decoded, WebAuthn.WebAuthnAuth calldata auth) = WebAuthn.tryDecodeAuth(assertion);
        if (!decoded || !isAcceptedAssertion(challenge, auth)) return false;
        bytes32 digest =
            sha256(abi.encodePacked(auth.authenticatorData, sha256(bytes(auth.clientDataJSON))));
        return verifyP256(digest, auth.r, auth.s, x, y, precompile);
    }

    /// @dev The checks of `verifyWebAuthn` besides the signature itself.
    function isAcceptedAssertion(bytes32 challenge, WebAuthn.WebAuthnAuth calldata auth)
        private
        pure
        returns (bool)
    {
        bytes calldata authenticatorData = auth.authenticatorData;
        // rpIdHash (32) ‖ flags (1) ‖ signCount (4), at least.
        if (authenticatorData.length < 37) return false;
        bytes1 flags = authenticatorData[32];
        if (flags & FLAG_UP == 0 || flags & FLAG_UV == 0) return false;
        if (flags & FLAG_BS != 0 && flags & FLAG_BE == 0) return false;

        bytes calldata clientData = bytes(auth.clientDataJSON);
        if (!hasAt(clientData, auth.typeIndex, bytes('"type":"webauthn.get"'))) return false;
        bytes memory expected =
            abi.encodePacked('"challenge":"', Base64.encodeURL(abi.encodePacked(challenge)), '"');
        return hasAt(clientData, auth.challengeIndex, expected);
    }

    /// @notice Whether the chain serves the P-256 precompile at 0x100: it accepts a known-valid
    /// signature (Wycheproof's secp256r1 vector with r = 5, s = 1, over sha256("123400")).
    /// Called once at deployment, never during validation.
    function hasP256Precompile() internal view returns (bool) {
        return callPrecompile(
            0xbb5a52f42f9c9261ed4361f59422a1e30036e7c32b270c8807a419feca605023,
            bytes32(uint256(5)),
            bytes32(uint256(1)),
            0xa71af64de5126a4a4e02b7922d66ce9415ce88a4c9d25514d91082c8725ac957,
            0x5d47723c8fbe580bb369fec9c2665d8e30a435b9932645482e7c9f11e872296b
        );
    }

    /// @dev The precompile returns 32 bytes holding 1 for a valid signature and nothing
    /// otherwise; anything but exactly 1 counts as invalid.
    function callPrecompile(bytes32 h, bytes32 r, bytes32 s, bytes32 x, bytes32 y)
        private
        view
        returns (bool)
    {
        (bool ok, bytes memory result) = P256_PRECOMPILE.staticcall(abi.encodePacked(h, r, s, x, y));
        if (!ok || result.length != 32) return false;
        // casting is safe: the result was just checked to be exactly 32 bytes
        // forge-lint: disable-next-line(unsafe-typecast)
        return uint256(bytes32(result)) == 1;
    }

    /// @dev Whether `data` holds `expected` at `index`, with no out-of-range read.
    function hasAt(bytes calldata data, uint256 index, bytes memory expected)
        private
        pure
        returns (bool)
    {
        if (index > data.length || data.length - index < expected.length) return false;
        return keccak256(data[index:index + expected.length]) == keccak256(expected);
    }
}
