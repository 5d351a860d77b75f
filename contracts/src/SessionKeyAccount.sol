// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {PasskeyVerifier} from "./PasskeyVerifier.sol";
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
/// - argument rules per allowlist entry: conditions on the static parameters of the call
///   (equal, not equal, at most, at least, one of a set, the account itself). The rules of one
///   entry must all hold; several entries for one (target, selector) are alternatives;
/// - a per-call native value limit and a cumulative native value budget;
/// - spend limits per asset, cumulative and per period: native value, ERC-20 amounts
///   (`transfer`, `transferFrom` from the account, `approve`, `increaseAllowance`, `permit`
///   for the account), ERC-721 tokens (each transfer or approval counts one) and ERC-1155
///   amounts by id. A period is charged by the op's own deadline, and the op is valid only
///   from that period's start, so the EntryPoint enforces the calendar (see `_spend`);
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

    /// @notice How an argument rule compares its parameter with its values.
    enum Condition {
        Equal,
        NotEqual,
        LessOrEqual,
        GreaterOrEqual,
        OneOf,
        IsAccount
    }

    /// @notice A condition on one static parameter of a call: the 32-byte ABI head word at
    /// position `param`, read as an unsigned integer. `width` is the parameter's size in bytes
    /// (20 for an address, 32 for a uint256 or bytes32, 1 for a bool or uint8): a word with any
    /// bit set above it is not a canonical encoding and fails the rule, so no token that masks
    /// dirty bits reads a different value than the rule did. Dynamic parameters have no head
    /// word of their own and take no rules.
    struct ArgumentRule {
        uint8 param;
        uint8 width;
        Condition condition;
        /// One value for Equal, NotEqual, LessOrEqual and GreaterOrEqual; one to
        /// `MAX_ONE_OF_VALUES` for OneOf; none for IsAccount.
        bytes32[] values;
    }

    /// @notice One allowlist entry: `selector` on `target`, or every selector when `anySelector`.
    /// The selector 0x00000000 allows an empty call (a plain value transfer) only. An entry with
    /// `rules` allows the call only when every rule holds.
    struct CallPermission {
        address target;
        bytes4 selector;
        bool anySelector;
        ArgumentRule[] rules;
    }

    /// @notice The kind of asset a spend limit counts.
    enum Asset {
        None,
        Native,
        ERC20,
        ERC721,
        ERC1155
    }

    /// @notice A spend limit on one asset: `total` over the key's life, and `perPeriod` in each
    /// period of `period` seconds (periods are aligned to unix time 0, so a day runs from 00:00
    /// UTC; a `period` of 0 sets no periodic allowance). Native value has token 0; an ERC-1155
    /// limit counts the amounts of one `id`; ERC-20 and ERC-721 limits take id 0.
    struct SpendLimit {
        Asset asset;
        address token;
        uint256 id;
        uint128 total;
        uint128 perPeriod;
        uint32 period;
    }

    /// @notice A spend limit and what the key has spent of it (three slots, in this order).
    /// `periodSpent` counts toward period `periodIndex` only: a later period starts from zero.
    struct SpendState {
        Asset asset;
        uint32 period;
        uint64 periodIndex;
        uint128 total;
        uint128 spent;
        uint128 perPeriod;
        uint128 periodSpent;
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
        /// Spend limits, at most one per (asset's token, id).
        SpendLimit[] limits;
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
        /// Whether the registration has spend limits: a call reads a limit's slots only then.
        bool hasSpendLimits;
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
    /// @notice The most values one OneOf rule may list.
    uint256 public constant MAX_ONE_OF_VALUES = 16;

    // The token functions that spend limits count. ERC-20 and ERC-721 share `approve` and
    // `transferFrom`; the limit's asset says which reading applies.
    bytes4 private constant TRANSFER = 0xa9059cbb; // transfer(address,uint256)
    bytes4 private constant TRANSFER_FROM = 0x23b872dd; // transferFrom(address,address,uint256)
    bytes4 private constant APPROVE = 0x095ea7b3; // approve(address,uint256)
    bytes4 private constant INCREASE_ALLOWANCE = 0x39509351; // increaseAllowance(address,uint256)
    // permit(address,address,uint256,uint256,uint8,bytes32,bytes32)
    bytes4 private constant PERMIT = 0xd505accf;
    // safeTransferFrom(address,address,uint256)
    bytes4 private constant SAFE_TRANSFER_FROM = 0x42842e0e;
    // safeTransferFrom(address,address,uint256,bytes)
    bytes4 private constant SAFE_TRANSFER_FROM_DATA = 0xb88d4fde;
    bytes4 private constant SET_APPROVAL_FOR_ALL = 0xa22cb465; // setApprovalForAll(address,bool)
    // safeTransferFrom(address,address,uint256,uint256,bytes)
    bytes4 private constant SAFE_TRANSFER_FROM_1155 = 0xf242432a;
    // safeBatchTransferFrom(address,address,uint256[],uint256[],bytes)
    bytes4 private constant SAFE_BATCH_TRANSFER_FROM = 0x2eb2c2d6;

    IEntryPoint private immutable _ENTRY_POINT;
    /// @dev Whether this chain serves the P-256 precompile; decided once, in the constructor
    /// of the implementation every clone delegates to (see `Signers`).
    bool private immutable _P256_PRECOMPILE;
    /// @dev P-256 and WebAuthn verification, deployed with the implementation (see
    /// `PasskeyVerifier`).
    PasskeyVerifier private immutable _PASSKEYS;

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
    /// @dev Allowlist entries with argument rules, per (target, selector): any one may admit.
    mapping(
        bytes32 registration
            => mapping(address target => mapping(bytes4 selector => ArgumentRule[][]))
    ) private _ruledEntries;
    /// @dev The asset kind of each token a registration limits; native value is token 0.
    mapping(bytes32 registration => mapping(address token => Asset)) private _limitedAsset;
    mapping(
        bytes32 registration => mapping(address token => mapping(uint256 id => SpendState))
    ) private _spendLimits;

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
    event SpendLimitUsed(
        bytes32 indexed registration,
        address indexed token,
        uint256 id,
        uint128 spent,
        uint64 periodIndex,
        uint128 periodSpent
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
    error InvalidArgumentRule(address target, bytes4 selector, uint256 rule);
    error InvalidSpendLimit(uint256 index);
    error SessionKeyArgumentNotAllowed(address target, bytes4 selector, uint8 param);
    error SessionKeyArgumentNotCanonical(address target, bytes4 selector, uint256 param);
    error SessionKeySpendLimitExceeded(address token, uint256 id, uint256 amount, uint128 left);
    error SessionKeyPeriodAllowanceExceeded(
        address token, uint256 id, uint256 amount, uint128 left
    );
    error SessionKeyPeriodOver(address token, uint256 id, uint64 period, uint64 current);
    error SessionKeySpendUnbounded(address token, bytes4 selector);

    modifier onlyOwnerOrSelf() {
        // A passkey owner has no address to call from; it acts through owner-signed ops.
        bool ownerCalls = ownerKind == SignerKind.Secp256k1 && msg.sender == owner;
        if (!ownerCalls && msg.sender != address(this)) revert NotOwnerOrSelf(msg.sender);
        _;
    }

    constructor(IEntryPoint entryPoint_) EIP712("SessionKeyAccount", "2") {
        _ENTRY_POINT = entryPoint_;
        _P256_PRECOMPILE = Signers.hasP256Precompile();
        _PASSKEYS = new PasskeyVerifier();
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
        session.hasSpendLimits = permissions.limits.length != 0;
        if (key.kind != SignerKind.Secp256k1) _storePoint(keyId, key.key);

        uint256 count = permissions.calls.length;
        for (uint256 i = 0; i < count; i++) {
            _storeCallPermission(registration, permissions.calls[i]);
        }
        for (uint256 i = 0; i < permissions.limits.length; i++) {
            _storeSpendLimit(registration, permissions.limits[i], i);
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

    /// @notice Whether `registration` may call `selector` on `target`, with any arguments or
    /// with some (see `getArgumentRules`); 0x00000000 asks about an empty call.
    function isCallAllowed(bytes32 registration, address target, bytes4 selector)
        external
        view
        returns (bool)
    {
        if (!_isActive(_sessions[registration])) return false;
        if (_isListed(registration, target, selector, selector == bytes4(0))) return true;
        return selector != bytes4(0) && _ruledEntries[registration][target][selector].length != 0;
    }

    /// @notice The allowlist entries with argument rules for (`target`, `selector`).
    function getArgumentRules(bytes32 registration, address target, bytes4 selector)
        external
        view
        returns (ArgumentRule[][] memory)
    {
        return _ruledEntries[registration][target][selector];
    }

    /// @notice The spend limit of `registration` on (`token`, `id`) and what it has spent;
    /// `asset` is None where there is no limit. Native value is token 0, id 0.
    function getSpendLimit(bytes32 registration, address token, uint256 id)
        external
        view
        returns (SpendState memory)
    {
        return _spendLimits[registration][token][id];
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
        return _PASSKEYS.verify(kind, key.x, key.y, message, signature, _P256_PRECOMPILE);
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
        (uint256 calls, uint256 value, uint48 periodStart) =
            _checkCalls(registration, session.valuePerCallLimit, opValidUntil, userOp.callData);
        _charge(registration, session, calls, value, _maxGasCost(userOp));
        if (session.hasSpendLimits) {
            uint48 nativeStart = _spend(registration, address(0), 0, value, opValidUntil);
            if (nativeStart > periodStart) periodStart = nativeStart;
        }

        uint48 validUntil = session.validUntil;
        if (opValidUntil < validUntil) validUntil = opValidUntil;
        uint48 validAfter = session.validAfter;
        if (periodStart > validAfter) validAfter = periodStart;
        return _packValidationData(false, validUntil, validAfter);
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

    /// @dev Checks every call that `callData` makes against the allowlist, its argument rules
    /// and the per-call value limit, and charges the token spend limits. Returns the number of
    /// calls, their total value, and the latest period start a charged limit requires.
    function _checkCalls(
        bytes32 registration,
        uint128 valuePerCallLimit,
        uint48 opValidUntil,
        bytes calldata callData
    ) private returns (uint256 calls, uint256 value, uint48 periodStart) {
        if (callData.length < 4) revert SessionKeyCallDataUnsupported(bytes4(0));
        bytes4 selector = bytes4(callData[:4]);
        if (selector == this.execute.selector) {
            (address target, uint256 callValue, bytes memory data) =
                abi.decode(callData[4:], (address, uint256, bytes));
            periodStart =
                _checkCall(registration, valuePerCallLimit, opValidUntil, target, callValue, data);
            return (1, callValue, periodStart);
        }
        if (selector == this.executeBatch.selector) {
            Call[] memory batch = abi.decode(callData[4:], (Call[]));
            // An empty batch would count as no call at all and slip past the call limit.
            if (batch.length == 0) revert SessionKeyEmptyBatch();
            for (uint256 i = 0; i < batch.length; i++) {
                Call memory call = batch[i];
                uint48 start = _checkCall(
                    registration,
                    valuePerCallLimit,
                    opValidUntil,
                    call.target,
                    call.value,
                    call.data
                );
                if (start > periodStart) periodStart = start;
                value += call.value;
            }
            return (batch.length, value, periodStart);
        }
        revert SessionKeyCallDataUnsupported(selector);
    }

    function _checkCall(
        bytes32 registration,
        uint128 valuePerCallLimit,
        uint48 opValidUntil,
        address target,
        uint256 value,
        bytes memory data
    ) private returns (uint48 periodStart) {
        if (_isForbiddenTarget(target)) revert SessionKeyForbiddenTarget(target);
        // 1 to 3 bytes of calldata would reach a fallback under no selector at all.
        if (data.length != 0 && data.length < 4) revert MalformedCallData(data.length);
        // casting is safe: a selector is by definition the first four bytes of calldata, and
        // empty calldata (a plain transfer) maps to 0x00000000
        // forge-lint: disable-next-line(unsafe-typecast)
        bytes4 selector = bytes4(data);
        if (!_isListed(registration, target, selector, data.length == 0)) {
            _checkArgumentRules(registration, target, selector, data);
        }
        if (value > valuePerCallLimit) {
            revert SessionKeyValuePerCallExceeded(value, valuePerCallLimit);
        }
        // A warm read: validation has read this slot of the registration already.
        if (!_sessions[registration].hasSpendLimits) return 0;
        Asset asset = _limitedAsset[registration][target];
        if (asset == Asset.None) return 0;
        return _chargeTokenCall(registration, target, asset, selector, data, opValidUntil);
    }

    /// @dev Passes when one of the ruled entries for the call admits its arguments; reverts with
    /// the failing parameter of the last entry tried otherwise.
    function _checkArgumentRules(
        bytes32 registration,
        address target,
        bytes4 selector,
        bytes memory data
    ) private view {
        ArgumentRule[][] storage entries = _ruledEntries[registration][target][selector];
        uint256 count = data.length == 0 ? 0 : entries.length;
        if (count == 0) revert SessionKeyCallNotAllowed(target, selector);
        uint8 failed;
        for (uint256 i = 0; i < count; i++) {
            bool admitted;
            (admitted, failed) = _entryAdmits(entries[i], data);
            if (admitted) return;
        }
        revert SessionKeyArgumentNotAllowed(target, selector, failed);
    }

    /// @dev Whether every rule of `entry` holds for `data`, and otherwise the first failing
    /// rule's parameter.
    function _entryAdmits(ArgumentRule[] storage entry, bytes memory data)
        private
        view
        returns (bool, uint8)
    {
        for (uint256 i = 0; i < entry.length; i++) {
            ArgumentRule storage rule = entry[i];
            uint8 param = rule.param;
            (bool present, uint256 word) = _argument(data, param);
            if (!present || !_ruleHolds(rule, word)) return (false, param);
        }
        return (true, 0);
    }

    function _ruleHolds(ArgumentRule storage rule, uint256 word) private view returns (bool) {
        uint8 width = rule.width;
        if (width < 32 && word >> (8 * uint256(width)) != 0) return false;
        Condition condition = rule.condition;
        if (condition == Condition.IsAccount) return word == uint256(uint160(address(this)));
        bytes32[] storage values = rule.values;
        if (condition == Condition.OneOf) {
            for (uint256 i = 0; i < values.length; i++) {
                if (word == uint256(values[i])) return true;
            }
            return false;
        }
        uint256 value = uint256(values[0]);
        if (condition == Condition.Equal) return word == value;
        if (condition == Condition.NotEqual) return word != value;
        if (condition == Condition.LessOrEqual) return word <= value;
        return word >= value;
    }

    /// @dev Charges the spend limit of `token` for one call to it. Only the functions that move
    /// or approve the account's own tokens count; approving every token at once has no amount
    /// to count and is refused.
    function _chargeTokenCall(
        bytes32 registration,
        address token,
        Asset asset,
        bytes4 selector,
        bytes memory data,
        uint48 opValidUntil
    ) private returns (uint48) {
        if (asset == Asset.ERC20) {
            if (selector == TRANSFER || selector == APPROVE || selector == INCREASE_ALLOWANCE) {
                return _spend(registration, token, 0, _uintArgument(data, 1), opValidUntil);
            }
            if (selector == TRANSFER_FROM || selector == PERMIT) {
                // transferFrom(from, to, amount) and permit(owner, spender, value, ...)
                if (_addressArgument(token, data, 0) != address(this)) return 0;
                return _spend(registration, token, 0, _uintArgument(data, 2), opValidUntil);
            }
            return 0;
        }
        if (selector == SET_APPROVAL_FOR_ALL) {
            if (_uintArgument(data, 1) != 0) revert SessionKeySpendUnbounded(token, selector);
            return 0;
        }
        if (asset == Asset.ERC721) {
            if (selector == APPROVE) {
                // approve(to, tokenId): approving nobody clears an approval and spends nothing.
                uint256 spent = _uintArgument(data, 0) == 0 ? 0 : 1;
                return _spend(registration, token, 0, spent, opValidUntil);
            }
            if (
                selector == TRANSFER_FROM || selector == SAFE_TRANSFER_FROM
                    || selector == SAFE_TRANSFER_FROM_DATA
            ) {
                if (_addressArgument(token, data, 0) != address(this)) return 0;
                return _spend(registration, token, 0, 1, opValidUntil);
            }
            return 0;
        }
        // ERC-1155
        if (selector == SAFE_TRANSFER_FROM_1155) {
            if (_addressArgument(token, data, 0) != address(this)) return 0;
            return _spend(
                registration, token, _uintArgument(data, 2), _uintArgument(data, 3), opValidUntil
            );
        }
        if (selector == SAFE_BATCH_TRANSFER_FROM) {
            if (_addressArgument(token, data, 0) != address(this)) return 0;
            return _chargeBatch(registration, token, data, opValidUntil);
        }
        return 0;
    }

    /// @dev Charges every (id, amount) pair of `safeBatchTransferFrom`. The arrays are read
    /// through their head offsets exactly as an ABI decoder does, so an unusual but valid
    /// encoding (offsets out of order, overlapping arrays) charges what the token moves.
    function _chargeBatch(
        bytes32 registration,
        address token,
        bytes memory data,
        uint48 opValidUntil
    ) private returns (uint48 periodStart) {
        (uint256 idsAt, uint256 count) = _arrayArgument(data, 2);
        (uint256 amountsAt, uint256 amounts) = _arrayArgument(data, 3);
        if (count != amounts) revert MalformedCallData(data.length);
        for (uint256 i = 0; i < count; i++) {
            uint256 id = _wordAt(data, idsAt + 32 * i);
            uint256 amount = _wordAt(data, amountsAt + 32 * i);
            uint48 start = _spend(registration, token, id, amount, opValidUntil);
            if (start > periodStart) periodStart = start;
        }
    }

    /// @dev Counts `amount` against the limit on (`token`, `id`), if there is one, and returns
    /// the earliest moment the op may be valid: the start of the period it is charged to.
    ///
    /// Validation may not read the clock (ERC-7562), so the op names its period itself: the one
    /// holding its deadline, `opValidUntil`. Returning that period's start as validAfter makes
    /// the EntryPoint refuse the op outside the period, so an allowance is spent only in its
    /// own period. An op signed for a period that has ended can no longer be included; its
    /// signer signs again for the current one.
    function _spend(
        bytes32 registration,
        address token,
        uint256 id,
        uint256 amount,
        uint48 opValidUntil
    ) private returns (uint48) {
        SpendState storage limit = _spendLimits[registration][token][id];
        if (amount == 0 || limit.asset == Asset.None) return 0;
        uint128 left = limit.total - limit.spent;
        if (amount > left) revert SessionKeySpendLimitExceeded(token, id, amount, left);
        // casting is safe: amount is at most what is left of the 128-bit total
        // forge-lint: disable-next-line(unsafe-typecast)
        uint128 spent = limit.spent + uint128(amount);
        limit.spent = spent;

        uint32 period = limit.period;
        if (period == 0) {
            emit SpendLimitUsed(registration, token, id, spent, 0, 0);
            return 0;
        }
        uint64 index = uint64(opValidUntil / period);
        uint64 current = limit.periodIndex;
        if (index < current) revert SessionKeyPeriodOver(token, id, index, current);
        uint128 periodSpent = index == current ? limit.periodSpent : 0;
        uint128 periodLeft = limit.perPeriod - periodSpent;
        if (amount > periodLeft) {
            revert SessionKeyPeriodAllowanceExceeded(token, id, amount, periodLeft);
        }
        // casting is safe: amount is at most what is left of the 128-bit allowance
        // forge-lint: disable-next-line(unsafe-typecast)
        periodSpent += uint128(amount);
        limit.periodIndex = index;
        limit.periodSpent = periodSpent;
        emit SpendLimitUsed(registration, token, id, spent, index, periodSpent);
        // The EntryPoint wants validAfter < block.timestamp: one second before the period.
        // casting is safe: index * period <= opValidUntil, a uint48
        // forge-lint: disable-next-line(unsafe-typecast)
        uint48 start = uint48(uint256(index) * period);
        return start == 0 ? 0 : start - 1;
    }

    /// @dev The head word of parameter `index`; absent when the calldata is too short for it.
    function _argument(bytes memory data, uint256 index)
        private
        pure
        returns (bool present, uint256 word)
    {
        uint256 at = 4 + 32 * index;
        if (data.length < at + 32) return (false, 0);
        return (true, _wordAt(data, at));
    }

    /// @dev A parameter the token must have; calldata too short for it is refused.
    function _uintArgument(bytes memory data, uint256 index) private pure returns (uint256) {
        (bool present, uint256 word) = _argument(data, index);
        if (!present) revert MalformedCallData(data.length);
        return word;
    }

    /// @dev An address parameter, refused unless canonically encoded: a token that masks dirty
    /// bits would read the account where the check read someone else.
    function _addressArgument(address token, bytes memory data, uint256 index)
        private
        pure
        returns (address)
    {
        uint256 word = _uintArgument(data, index);
        if (word > type(uint160).max) {
            // casting is safe: a selector is the first four bytes of calldata
            // forge-lint: disable-next-line(unsafe-typecast)
            revert SessionKeyArgumentNotCanonical(token, bytes4(data), index);
        }
        // casting is safe: the word was just checked to fit 160 bits
        // forge-lint: disable-next-line(unsafe-typecast)
        return address(uint160(word));
    }

    /// @dev A dynamic uint256[] parameter: where its elements start in `data`, and how many.
    function _arrayArgument(bytes memory data, uint256 index)
        private
        pure
        returns (uint256 elementsAt, uint256 length)
    {
        uint256 offset = _uintArgument(data, index);
        // Offsets count from the first parameter, after the selector.
        if (offset > data.length) revert MalformedCallData(data.length);
        uint256 lengthAt = 4 + offset;
        if (data.length < lengthAt + 32) revert MalformedCallData(data.length);
        length = _wordAt(data, lengthAt);
        elementsAt = lengthAt + 32;
        if (length > (data.length - elementsAt) / 32) revert MalformedCallData(data.length);
    }

    /// @dev The 32 bytes of `data` from byte `at`; the caller checks the bounds.
    function _wordAt(bytes memory data, uint256 at) private pure returns (uint256 word) {
        assembly ("memory-safe") {
            word := mload(add(add(data, 32), at))
        }
    }

    /// @dev Stores one allowlist entry, with its argument rules if it has any.
    function _storeCallPermission(bytes32 registration, CallPermission calldata permission)
        private
    {
        address target = permission.target;
        if (_isForbiddenTarget(target)) revert InvalidPermissionTarget(target);
        uint256 count = permission.rules.length;
        if (permission.anySelector) {
            if (count != 0) revert InvalidArgumentRule(target, bytes4(0), 0);
            _anySelector[registration][target] = true;
            return;
        }
        bytes4 selector = permission.selector;
        if (count == 0) {
            _allowedSelector[registration][target][selector] = true;
            return;
        }
        // An empty call has no arguments to rule on.
        if (selector == bytes4(0)) revert InvalidArgumentRule(target, selector, 0);
        ArgumentRule[] storage entry = _ruledEntries[registration][target][selector].push();
        for (uint256 i = 0; i < count; i++) {
            ArgumentRule calldata rule = permission.rules[i];
            if (!_isValidRule(rule)) revert InvalidArgumentRule(target, selector, i);
            ArgumentRule storage stored = entry.push();
            stored.param = rule.param;
            stored.width = rule.width;
            stored.condition = rule.condition;
            for (uint256 j = 0; j < rule.values.length; j++) {
                stored.values.push(rule.values[j]);
            }
        }
    }

    function _isValidRule(ArgumentRule calldata rule) private pure returns (bool) {
        uint8 width = rule.width;
        if (width == 0 || width > 32) return false;
        uint256 count = rule.values.length;
        Condition condition = rule.condition;
        if (condition == Condition.IsAccount) return count == 0 && width == 20;
        if (condition == Condition.OneOf) {
            if (count == 0 || count > MAX_ONE_OF_VALUES) return false;
        } else if (count != 1) {
            return false;
        }
        // A value wider than the parameter could never be compared with a canonical word.
        for (uint256 i = 0; i < count; i++) {
            if (width < 32 && uint256(rule.values[i]) >> (8 * uint256(width)) != 0) return false;
        }
        return true;
    }

    /// @dev Stores one spend limit. Every token-limited target must be allowed by selector:
    /// "every selector" would admit functions the limit cannot count.
    function _storeSpendLimit(bytes32 registration, SpendLimit calldata limit, uint256 index)
        private
    {
        Asset asset = limit.asset;
        address token = limit.token;
        bool valid = asset != Asset.None && (limit.period != 0 || limit.perPeriod == 0);
        if (asset == Asset.Native) {
            valid = valid && token == address(0) && limit.id == 0;
        } else {
            valid = valid && !_isForbiddenTarget(token) && !_anySelector[registration][token]
                && (asset == Asset.ERC1155 || limit.id == 0);
        }
        Asset existing = _limitedAsset[registration][token];
        SpendState storage state = _spendLimits[registration][token][limit.id];
        if (!valid || (existing != Asset.None && existing != asset) || state.asset != Asset.None) {
            revert InvalidSpendLimit(index);
        }
        _limitedAsset[registration][token] = asset;
        state.asset = asset;
        state.period = limit.period;
        state.total = limit.total;
        state.perPeriod = limit.perPeriod;
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
        return
            _PASSKEYS.verify(
                SignerKind.WebAuthn, key.x, key.y, message, signature, _P256_PRECOMPILE
            );
    }

    function _startNewEpoch() private {
        uint64 epoch = sessionEpoch + 1;
        sessionEpoch = epoch;
        emit AllSessionKeysRevoked(epoch);
    }

    function _isActive(SessionKey storage session) private view returns (bool) {
        return session.keyId != address(0) && !session.revoked && session.epoch == sessionEpoch;
    }

    /// @dev Whether an entry without rules admits the call. `emptyCall` is whether the calldata
    /// is empty: only then does the 0x00000000 entry apply, so calldata that merely starts with
    /// four zero bytes never matches it.
    function _isListed(bytes32 registration, address target, bytes4 selector, bool emptyCall)
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
