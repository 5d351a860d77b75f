// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Signer, SignerKind, Signers} from "./Signers.sol";
import {BaseAccount} from "@account-abstraction/contracts/core/BaseAccount.sol";
import {
    SIG_VALIDATION_FAILED,
    SIG_VALIDATION_SUCCESS,
    _packValidationData
} from "@account-abstraction/contracts/core/Helpers.sol";
import {UserOperationLib} from "@account-abstraction/contracts/core/UserOperationLib.sol";
import {IEntryPoint} from "@account-abstraction/contracts/interfaces/IEntryPoint.sol";
import {
    PackedUserOperation
} from "@account-abstraction/contracts/interfaces/PackedUserOperation.sol";
import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {Initializable} from "@openzeppelin/contracts/proxy/utils/Initializable.sol";
import {ERC1155Holder} from "@openzeppelin/contracts/token/ERC1155/utils/ERC1155Holder.sol";
import {ERC721Holder} from "@openzeppelin/contracts/token/ERC721/utils/ERC721Holder.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";

/// @title SessionKeyAccount
/// @notice An ERC-4337 (EntryPoint v0.8) account with one owner, an Ethereum key or a passkey
/// (WebAuthn, P-256), and any number of session keys of any signer kind (see `Signers`).
///
/// A user operation's signature starts with one byte saying who signs:
/// - `0x00 ‖ ownerSignature`: the owner signs the userOpHash. An Ethereum owner signs the raw
///   EIP-712 digest (a wallet signing the v0.8 typed data) or its EIP-191 personal-sign message;
///   a passkey owner signs an assertion whose challenge is the userOpHash.
/// - `0x01 ‖ registration (32) ‖ validUntil (6) ‖ keySignature`: a session key signs
///   `sessionOperationHash(userOpHash, registration, validUntil)`. The signature is bound to one
///   registration of the key, so nothing signed under a revoked registration is valid under a
///   later one, and to the op's own deadline, so an op that did not land in time never can.
///
/// A session key acts within the window and permissions of its registration, enforced during
/// validation:
/// - the window, narrowed by the op's deadline, is returned in validationData, so the
///   EntryPoint enforces it (no `block.timestamp` read during validation, as ERC-7562 requires).
///   The EntryPoint accepts an op when `validAfter < block.timestamp <= validUntil`;
/// - a call-count limit, counting every call of a batch;
/// - an allowlist of (target, selector) pairs, or every selector of a target. The selector
///   0x00000000 stands for an empty call (a plain value transfer) and nothing else;
/// - a per-call native value limit and a cumulative native value budget;
/// - a gas budget: the most the key's operations may cost the account in fees, so a stolen key
///   cannot drain the account by signing operations with huge gas limits or fees;
/// - its own EntryPoint nonce keys: the 192-bit nonce key of its operations must hold the key's
///   id in its top 160 bits, leaving 2^32 independent lanes per key, so a session key can never
///   consume the sequence of operations the owner has signed;
/// - no call to the account itself or to the EntryPoint, so no admin function is reachable;
/// - no ERC-1271 signature on the account's behalf.
///
/// Each registration has an id the owner chooses and the account never accepts twice. Revoking
/// it is final; changing the owner or revoking all keys starts a new epoch, which voids every
/// registration made before.
contract SessionKeyAccount is
    BaseAccount,
    Initializable,
    EIP712,
    IERC1271,
    ERC1155Holder,
    ERC721Holder
{
    using UserOperationLib for PackedUserOperation;

    /// @notice One allowlist entry: `selector` on `target`, or every selector when `anySelector`.
    /// The selector 0x00000000 allows an empty call (a plain value transfer) only.
    struct CallPermission {
        address target;
        bytes4 selector;
        bool anySelector;
    }

    /// @notice What a session key may do. Every limit is a real cap; none has a magic value.
    struct SessionPermissions {
        /// Calls the key may make over its life; each call of a batch counts.
        uint32 callLimit;
        /// Largest native value a single call may carry.
        uint128 valuePerCallLimit;
        /// Total native value all calls together may carry.
        uint128 valueBudget;
        /// Total wei the key's operations may cost the account in gas fees. Each operation is
        /// charged its worst case, (verification + call + preVerification gas) * maxFeePerGas,
        /// because validation cannot know the actual cost; an operation with a paymaster costs
        /// the account nothing and is not charged.
        uint128 gasBudget;
        /// The (target, selector) pairs the key may call.
        CallPermission[] calls;
    }

    /// @notice One registration of a session key, as stored (five slots, in this order).
    struct SessionKey {
        /// Whether the registration is in force: registered, not revoked, of the current epoch.
        /// Only the view sets it; storage keeps `revoked` and `epoch` instead.
        bool registered;
        address keyId;
        SignerKind kind;
        bool revoked;
        uint32 callLimit;
        uint32 callsUsed;
        uint48 validAfter;
        uint48 validUntil;
        uint64 epoch;
        uint128 valuePerCallLimit;
        uint128 valueBudget;
        uint128 valueSpent;
        uint128 gasSpent;
        uint128 gasBudget;
    }

    /// @notice A P-256 public key, stored by its id.
    struct PublicKey {
        bytes32 x;
        bytes32 y;
    }

    /// @notice The signer byte that starts a user operation's signature.
    uint8 public constant OWNER_SIGNATURE = 0x00;
    uint8 public constant SESSION_KEY_SIGNATURE = 0x01;

    /// @notice The EIP-712 type a session key signs for each operation.
    bytes32 public constant SESSION_OPERATION_TYPEHASH =
        keccak256("SessionOperation(bytes32 userOpHash,bytes32 registration,uint48 validUntil)");
    /// @notice The EIP-712 type that ERC-1271 wraps every hash in, under the account's domain.
    bytes32 public constant ACCOUNT_MESSAGE_TYPEHASH =
        keccak256("SessionKeyAccountMessage(bytes32 hash)");

    bytes4 private constant ERC1271_MAGIC_VALUE = IERC1271.isValidSignature.selector;
    bytes4 private constant ERC1271_INVALID = 0xffffffff;
    /// @dev signer byte (1) ‖ registration (32) ‖ validUntil (6).
    uint256 private constant SESSION_FRAME_LENGTH = 39;

    IEntryPoint private immutable _ENTRY_POINT;
    /// @dev Whether this chain serves the P-256 precompile; decided once, in the constructor
    /// of the implementation every clone delegates to (see `Signers`).
    bool private immutable _P256_PRECOMPILE;

    /// @notice The owner's id: its address for an Ethereum owner (see `Signers.id`).
    address public owner;
    /// @notice The owner's signer kind: Secp256k1 or WebAuthn.
    SignerKind public ownerKind;
    /// @notice Bumped when the owner changes or every session key is revoked; voids every
    /// registration of an earlier epoch.
    uint64 public sessionEpoch;
    /// @dev P-256 points by signer id, for a passkey owner and P-256 session keys.
    mapping(address signerId => PublicKey) private _publicKeys;
    mapping(bytes32 registration => SessionKey) private _sessions;
    mapping(bytes32 registration => mapping(address target => bool)) private _anySelector;
    mapping(
        bytes32 registration => mapping(address target => mapping(bytes4 selector => bool))
    ) private _allowedSelector;

    event AccountInitialized(
        IEntryPoint indexed entryPoint, address indexed owner, SignerKind ownerKind
    );
    event OwnershipTransferred(
        address indexed previousOwner, address indexed newOwner, SignerKind newOwnerKind
    );
    event SessionKeyRegistered(
        bytes32 indexed registration,
        address indexed keyId,
        SignerKind kind,
        uint48 validAfter,
        uint48 validUntil,
        uint32 callLimit,
        uint128 valuePerCallLimit,
        uint128 valueBudget,
        uint128 gasBudget,
        uint256 permissionCount
    );
    event SessionKeyRevoked(bytes32 indexed registration, address indexed keyId);
    event AllSessionKeysRevoked(uint64 newEpoch);
    event SessionKeyUsed(
        bytes32 indexed registration, uint32 callsUsed, uint128 valueSpent, uint128 gasSpent
    );

    error NotOwnerOrSelf(address caller);
    error NotEntryPointOrOwner(address caller);
    error InvalidOwner(SignerKind kind, bytes key);
    error InvalidSessionKey(SignerKind kind, bytes key);
    error InvalidSessionWindow(uint48 validAfter, uint48 validUntil);
    error InvalidPermissionTarget(address target);
    error RegistrationAlreadyUsed(bytes32 registration);
    error SessionKeyNotRegistered(bytes32 registration);
    error SessionKeyOperationDeadlineMissing();
    error SessionKeyCallDataUnsupported(bytes4 selector);
    error SessionKeyForbiddenTarget(address target);
    error SessionKeyCallNotAllowed(address target, bytes4 selector);
    error SessionKeyValuePerCallExceeded(uint256 value, uint128 limit);
    error SessionKeyValueBudgetExceeded(uint256 requested, uint128 remaining);
    error SessionKeyCallLimitReached(uint256 requested, uint32 remaining);
    error SessionKeyGasBudgetExceeded(uint256 maxCost, uint128 remaining);
    error SessionKeyNonceKeyMismatch(address keyId, uint192 nonceKey);
    error SessionKeyEmptyBatch();
    error MalformedCallData(uint256 length);

    modifier onlyOwnerOrSelf() {
        // A passkey owner has no address to call from; it acts through owner-signed ops.
        bool ownerCalls = ownerKind == SignerKind.Secp256k1 && msg.sender == owner;
        if (!ownerCalls && msg.sender != address(this)) revert NotOwnerOrSelf(msg.sender);
        _;
    }

    constructor(IEntryPoint entryPoint_) EIP712("SessionKeyAccount", "2") {
        _ENTRY_POINT = entryPoint_;
        _P256_PRECOMPILE = Signers.hasP256Precompile();
        _disableInitializers();
    }

    /// @notice Sets the owner of a freshly cloned account; the factory calls it in the same
    /// transaction as the clone, so nobody can front-run it.
    function initialize(Signer calldata owner_) external initializer {
        _setOwner(owner_);
        emit AccountInitialized(_ENTRY_POINT, owner, owner_.kind);
    }

    receive() external payable {}

    /// @inheritdoc BaseAccount
    function entryPoint() public view override returns (IEntryPoint) {
        return _ENTRY_POINT;
    }

    // ---------------------------------------------------------------------------------------
    // Admin: callable by an Ethereum owner directly, or by the account through an owner-signed
    // op.
    // ---------------------------------------------------------------------------------------

    /// @notice Hands the account to `newOwner` and voids every session key.
    function transferOwnership(Signer calldata newOwner) external onlyOwnerOrSelf {
        address previous = owner;
        _setOwner(newOwner);
        emit OwnershipTransferred(previous, owner, newOwner.kind);
        _startNewEpoch();
    }

    /// @notice Registers `key` under the id `registration`, with a validity window and
    /// permissions. An id is accepted once in the account's life, so a key registered again
    /// gets a new id, clean permissions, and none of the signatures made under the old one.
    function registerSessionKey(
        bytes32 registration,
        Signer calldata key,
        uint48 validAfter,
        uint48 validUntil,
        SessionPermissions calldata permissions
    ) external onlyOwnerOrSelf {
        if (!Signers.isValid(key)) {
            revert InvalidSessionKey(key.kind, key.key);
        }
        address keyId = Signers.id(key);
        if (keyId == owner || keyId == address(this)) revert InvalidSessionKey(key.kind, key.key);
        if (validUntil <= validAfter) revert InvalidSessionWindow(validAfter, validUntil);
        SessionKey storage session = _sessions[registration];
        if (registration == bytes32(0) || session.keyId != address(0)) {
            revert RegistrationAlreadyUsed(registration);
        }

        session.keyId = keyId;
        session.kind = key.kind;
        session.callLimit = permissions.callLimit;
        session.validAfter = validAfter;
        session.validUntil = validUntil;
        session.epoch = sessionEpoch;
        session.valuePerCallLimit = permissions.valuePerCallLimit;
        session.valueBudget = permissions.valueBudget;
        session.gasBudget = permissions.gasBudget;
        if (key.kind != SignerKind.Secp256k1) _storePoint(keyId, key.key);

        uint256 count = permissions.calls.length;
        for (uint256 i = 0; i < count; i++) {
            CallPermission calldata permission = permissions.calls[i];
            if (_isForbiddenTarget(permission.target)) {
                revert InvalidPermissionTarget(permission.target);
            }
            if (permission.anySelector) {
                _anySelector[registration][permission.target] = true;
            } else {
                _allowedSelector[registration][permission.target][permission.selector] = true;
            }
        }
        emit SessionKeyRegistered(
            registration,
            keyId,
            key.kind,
            validAfter,
            validUntil,
            permissions.callLimit,
            permissions.valuePerCallLimit,
            permissions.valueBudget,
            permissions.gasBudget,
            count
        );
    }

    /// @notice Revokes one registration, for good.
    function revokeSessionKey(bytes32 registration) external onlyOwnerOrSelf {
        SessionKey storage session = _sessions[registration];
        if (!_isActive(session)) revert SessionKeyNotRegistered(registration);
        session.revoked = true;
        emit SessionKeyRevoked(registration, session.keyId);
    }

    /// @notice Revokes every session key at once.
    function revokeAllSessionKeys() external onlyOwnerOrSelf {
        _startNewEpoch();
    }

    // ---------------------------------------------------------------------------------------
    // Views
    // ---------------------------------------------------------------------------------------

    /// @notice The owner's kind and public key, as `initialize` takes it.
    function ownerSigner() external view returns (Signer memory) {
        return Signer({kind: ownerKind, key: _publicKey(ownerKind, owner)});
    }

    /// @notice The state of `registration`; `registered` is false for an unknown, revoked or
    /// voided one.
    function getSessionKey(bytes32 registration) external view returns (SessionKey memory key) {
        key = _sessions[registration];
        key.registered = _isActive(_sessions[registration]);
    }

    /// @notice Whether `registration` may call `selector` on `target`; 0x00000000 asks about an
    /// empty call.
    function isCallAllowed(bytes32 registration, address target, bytes4 selector)
        external
        view
        returns (bool)
    {
        return _isActive(_sessions[registration])
            && _isAllowed(registration, target, selector, selector == bytes4(0));
    }

    /// @notice Whether this account verifies P-256 with the precompile at 0x100.
    function usesP256Precompile() external view returns (bool) {
        return _P256_PRECOMPILE;
    }

    /// @notice What a session key signs for one operation: the EIP-712 struct hash of
    /// `SessionOperation(userOpHash, registration, validUntil)`. The userOpHash already binds
    /// the EntryPoint, the chain and the account.
    function sessionOperationHash(bytes32 userOpHash, bytes32 registration, uint48 validUntil)
        public
        pure
        returns (bytes32)
    {
        return
            keccak256(abi.encode(SESSION_OPERATION_TYPEHASH, userOpHash, registration, validUntil));
    }

    /// @notice The digest the owner signs for ERC-1271 approval of `hash`: the EIP-712 typed
    /// data `SessionKeyAccountMessage(hash)` under this account's own domain (name
    /// "SessionKeyAccount", version "2", the chain, this account), so a signature for one
    /// account never replays on another, on another chain, or as the owner's own.
    function replaySafeHash(bytes32 hash) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(ACCOUNT_MESSAGE_TYPEHASH, hash)));
    }

    /// @notice ERC-1271. Only the owner's signature over `replaySafeHash(hash)` is accepted: a
    /// session key can never sign for the account, so it cannot approve permits or log in
    /// elsewhere.
    function isValidSignature(bytes32 hash, bytes calldata signature)
        external
        view
        returns (bytes4)
    {
        return _isOwnerSignature(replaySafeHash(hash), signature)
            ? ERC1271_MAGIC_VALUE
            : ERC1271_INVALID;
    }

    // ---------------------------------------------------------------------------------------
    // ERC-4337 validation
    // ---------------------------------------------------------------------------------------

    /// @dev A bad signature gets SIG_VALIDATION_FAILED, so that gas estimation with a dummy
    /// signature still works; a session key that breaks a rule reverts with the rule's error,
    /// which the EntryPoint reports as AA23.
    function _validateSignature(PackedUserOperation calldata userOp, bytes32 userOpHash)
        internal
        override
        returns (uint256 validationData)
    {
        bytes calldata signature = userOp.signature;
        if (signature.length == 0) return SIG_VALIDATION_FAILED;
        uint8 signer = uint8(signature[0]);
        if (signer == OWNER_SIGNATURE) {
            bool valid = _isOwnerSignature(userOpHash, signature[1:])
                || (ownerKind == SignerKind.Secp256k1
                    && _isOwnerSignature(
                        MessageHashUtils.toEthSignedMessageHash(userOpHash), signature[1:]
                    ));
            return valid ? SIG_VALIDATION_SUCCESS : SIG_VALIDATION_FAILED;
        }
        if (signer != SESSION_KEY_SIGNATURE || signature.length < SESSION_FRAME_LENGTH) {
            return SIG_VALIDATION_FAILED;
        }
        bytes32 registration = bytes32(signature[1:33]);
        uint48 opValidUntil = uint48(bytes6(signature[33:39]));
        SessionKey storage session = _sessions[registration];
        if (!_isActive(session)) return SIG_VALIDATION_FAILED;
        bytes32 message = sessionOperationHash(userOpHash, registration, opValidUntil);
        if (!_isKeySignature(session, message, signature[SESSION_FRAME_LENGTH:])) {
            return SIG_VALIDATION_FAILED;
        }
        if (opValidUntil == 0) revert SessionKeyOperationDeadlineMissing();
        return _validateSessionOp(registration, session, opValidUntil, userOp);
    }

    function _isKeySignature(SessionKey storage session, bytes32 message, bytes calldata signature)
        private
        view
        returns (bool)
    {
        address keyId = session.keyId;
        SignerKind kind = session.kind;
        if (kind == SignerKind.Secp256k1) return Signers.recover(message, signature) == keyId;
        PublicKey storage key = _publicKeys[keyId];
        return Signers.verify(kind, keyId, key.x, key.y, message, signature, _P256_PRECOMPILE);
    }

    function _validateSessionOp(
        bytes32 registration,
        SessionKey storage session,
        uint48 opValidUntil,
        PackedUserOperation calldata userOp
    ) private returns (uint256) {
        address keyId = session.keyId;
        uint192 nonceKey = uint192(userOp.nonce >> 64);
        // casting is safe: a 192-bit nonce key shifted right by 32 has 160 bits left
        // forge-lint: disable-next-line(unsafe-typecast)
        if (uint160(nonceKey >> 32) != uint160(keyId)) {
            revert SessionKeyNonceKeyMismatch(keyId, nonceKey);
        }
        (uint256 calls, uint256 value) = _checkCalls(registration, session, userOp.callData);
        _charge(registration, session, calls, value, _maxGasCost(userOp));

        uint48 validUntil = session.validUntil;
        if (opValidUntil < validUntil) validUntil = opValidUntil;
        return _packValidationData(false, validUntil, session.validAfter);
    }

    /// @dev Counts an operation's calls, value and worst-case gas cost against the limits.
    function _charge(
        bytes32 registration,
        SessionKey storage session,
        uint256 calls,
        uint256 value,
        uint256 gasCost
    ) private {
        uint32 callsLeft = session.callLimit - session.callsUsed;
        if (calls > callsLeft) revert SessionKeyCallLimitReached(calls, callsLeft);
        uint128 valueLeft = session.valueBudget - session.valueSpent;
        if (value > valueLeft) revert SessionKeyValueBudgetExceeded(value, valueLeft);
        uint128 gasLeft = session.gasBudget - session.gasSpent;
        if (gasCost > gasLeft) revert SessionKeyGasBudgetExceeded(gasCost, gasLeft);

        // The casts are safe: each amount is at most what is left of its limit, which has the
        // limit's own width.
        // forge-lint: disable-next-line(unsafe-typecast)
        uint32 callsUsed = session.callsUsed + uint32(calls);
        // forge-lint: disable-next-line(unsafe-typecast)
        uint128 valueSpent = session.valueSpent + uint128(value);
        // forge-lint: disable-next-line(unsafe-typecast)
        uint128 gasSpent = session.gasSpent + uint128(gasCost);
        session.callsUsed = callsUsed;
        session.valueSpent = valueSpent;
        session.gasSpent = gasSpent;
        emit SessionKeyUsed(registration, callsUsed, valueSpent, gasSpent);
    }

    /// @dev The most `userOp` can cost the account: the EntryPoint never charges more than
    /// this prefund. With a paymaster, the paymaster pays and the account risks nothing.
    function _maxGasCost(PackedUserOperation calldata userOp) private pure returns (uint256) {
        if (userOp.paymasterAndData.length != 0) return 0;
        uint256 gas = userOp.unpackVerificationGasLimit() + userOp.unpackCallGasLimit()
            + userOp.preVerificationGas;
        return gas * userOp.unpackMaxFeePerGas();
    }

    /// @dev Checks every call that `callData` makes against the allowlist and the per-call value
    /// limit, and returns the number of calls and their total value.
    function _checkCalls(bytes32 registration, SessionKey storage session, bytes calldata callData)
        private
        view
        returns (uint256 calls, uint256 value)
    {
        if (callData.length < 4) revert SessionKeyCallDataUnsupported(bytes4(0));
        bytes4 selector = bytes4(callData[:4]);
        if (selector == this.execute.selector) {
            (address target, uint256 callValue, bytes memory data) =
                abi.decode(callData[4:], (address, uint256, bytes));
            _checkCall(registration, session, target, callValue, data);
            return (1, callValue);
        }
        if (selector == this.executeBatch.selector) {
            Call[] memory batch = abi.decode(callData[4:], (Call[]));
            // An empty batch would count as no call at all and slip past the call limit.
            if (batch.length == 0) revert SessionKeyEmptyBatch();
            for (uint256 i = 0; i < batch.length; i++) {
                _checkCall(registration, session, batch[i].target, batch[i].value, batch[i].data);
                value += batch[i].value;
            }
            return (batch.length, value);
        }
        revert SessionKeyCallDataUnsupported(selector);
    }

    function _checkCall(
        bytes32 registration,
        SessionKey storage session,
        address target,
        uint256 value,
        bytes memory data
    ) private view {
        if (_isForbiddenTarget(target)) revert SessionKeyForbiddenTarget(target);
        // 1 to 3 bytes of calldata would reach a fallback under no selector at all.
        if (data.length != 0 && data.length < 4) revert MalformedCallData(data.length);
        // casting is safe: a selector is by definition the first four bytes of calldata, and
        // empty calldata (a plain transfer) maps to 0x00000000
        // forge-lint: disable-next-line(unsafe-typecast)
        bytes4 selector = bytes4(data);
        if (!_isAllowed(registration, target, selector, data.length == 0)) {
            revert SessionKeyCallNotAllowed(target, selector);
        }
        uint128 limit = session.valuePerCallLimit;
        if (value > limit) revert SessionKeyValuePerCallExceeded(value, limit);
    }

    // ---------------------------------------------------------------------------------------
    // Internals
    // ---------------------------------------------------------------------------------------

    /// @dev An Ethereum owner may also drive `execute` directly, without the EntryPoint.
    function _requireForExecute() internal view override {
        if (msg.sender == address(_ENTRY_POINT)) return;
        if (ownerKind == SignerKind.Secp256k1 && msg.sender == owner) return;
        revert NotEntryPointOrOwner(msg.sender);
    }

    function _setOwner(Signer calldata newOwner) private {
        if (newOwner.kind == SignerKind.P256 || !Signers.isValid(newOwner)) {
            revert InvalidOwner(newOwner.kind, newOwner.key);
        }
        address ownerId = Signers.id(newOwner);
        if (ownerId == address(this)) revert InvalidOwner(newOwner.kind, newOwner.key);
        owner = ownerId;
        ownerKind = newOwner.kind;
        if (newOwner.kind != SignerKind.Secp256k1) _storePoint(ownerId, newOwner.key);
    }

    function _storePoint(address signerId, bytes calldata key) private {
        (bytes32 x, bytes32 y) = Signers.point(key);
        _publicKeys[signerId] = PublicKey(x, y);
    }

    function _publicKey(SignerKind kind, address signerId) private view returns (bytes memory) {
        if (kind == SignerKind.Secp256k1) return abi.encodePacked(signerId);
        PublicKey storage key = _publicKeys[signerId];
        return abi.encodePacked(key.x, key.y);
    }

    /// @dev The implementation contract behind the clones has no owner, so nothing matches.
    function _isOwnerSignature(bytes32 message, bytes calldata signature)
        private
        view
        returns (bool)
    {
        address ownerId = owner;
        if (ownerId == address(0)) return false;
        SignerKind kind = ownerKind;
        if (kind == SignerKind.Secp256k1) return Signers.recover(message, signature) == ownerId;
        PublicKey storage key = _publicKeys[ownerId];
        return Signers.verifyWebAuthn(message, signature, key.x, key.y, _P256_PRECOMPILE);
    }

    function _startNewEpoch() private {
        uint64 epoch = sessionEpoch + 1;
        sessionEpoch = epoch;
        emit AllSessionKeysRevoked(epoch);
    }

    function _isActive(SessionKey storage session) private view returns (bool) {
        return session.keyId != address(0) && !session.revoked && session.epoch == sessionEpoch;
    }

    /// @dev `emptyCall` is whether the calldata is empty: only then does the 0x00000000 entry
    /// apply, so calldata that merely starts with four zero bytes never matches it.
    function _isAllowed(bytes32 registration, address target, bytes4 selector, bool emptyCall)
        private
        view
        returns (bool)
    {
        if (_anySelector[registration][target]) return true;
        if (selector == bytes4(0) && !emptyCall) return false;
        return _allowedSelector[registration][target][selector];
    }

    /// @dev A session key must never reach the account's own functions, nor the EntryPoint,
    /// where the account's deposit and stake live.
    function _isForbiddenTarget(address target) private view returns (bool) {
        return target == address(this) || target == address(_ENTRY_POINT) || target == address(0);
    }
}
