// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

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
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";

/// @title SessionKeyAccount
/// @notice An ERC-4337 (EntryPoint v0.8) account with one secp256k1 owner and any number of
/// session keys. A session key signs user operations on its own, within a validity window and
/// permissions that this contract enforces during validation:
/// - the window is returned in validationData, so the EntryPoint enforces it (no
///   `block.timestamp` read during validation, as ERC-7562 requires). The EntryPoint accepts
///   an op when `validAfter < block.timestamp <= validUntil`: validAfter itself is excluded;
/// - a call-count limit, counting every call of a batch;
/// - an allowlist of (target, selector) pairs, or every selector of a target;
/// - a per-call native value limit and a cumulative native value budget;
/// - a gas budget: the most the key's operations may cost the account in fees, so a stolen key
///   cannot drain the account by signing operations with huge gas limits or fees;
/// - its own EntryPoint nonce keys: the 192-bit nonce key of its operations must hold the key's
///   address in its top 160 bits, leaving 2^32 independent lanes per key, so a session key
///   can never consume the sequence of operations the owner has signed;
/// - no call to the account itself or to the EntryPoint, so no admin function is reachable;
/// - no ERC-1271 signature on the account's behalf.
/// Session keys live under the pair (epoch, key generation). Changing the owner or revoking all
/// keys moves to a new epoch, and revoking one key moves it to a new generation, so an old
/// allowlist is never reachable again: a key registered anew starts from clean permissions.
contract SessionKeyAccount is BaseAccount, Initializable, IERC1271, ERC1155Holder, ERC721Holder {
    using UserOperationLib for PackedUserOperation;

    /// @notice One allowlist entry: `selector` on `target`, or every selector when `anySelector`.
    /// A plain value transfer (empty calldata) has selector 0x00000000.
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

    /// @notice The stored state of one registered session key.
    struct SessionKey {
        bool registered;
        uint48 validAfter;
        uint48 validUntil;
        uint32 callLimit;
        uint32 callsUsed;
        uint128 valuePerCallLimit;
        uint128 valueBudget;
        uint128 valueSpent;
        uint128 gasSpent;
        uint128 gasBudget;
    }

    bytes4 private constant ERC1271_MAGIC_VALUE = IERC1271.isValidSignature.selector;
    bytes4 private constant ERC1271_INVALID = 0xffffffff;

    IEntryPoint private immutable _ENTRY_POINT;

    /// @notice The secp256k1 address that controls the account.
    address public owner;
    /// @notice Bumped when the owner changes or every session key is revoked; voids all keys.
    uint64 public sessionEpoch;
    /// @dev Bumped when one key is revoked; voids that key's permissions.
    mapping(address key => uint64) private _keyGeneration;
    /// @dev Keyed by `_sessionId(key)`.
    mapping(bytes32 sessionId => SessionKey) private _sessionKeys;
    mapping(bytes32 sessionId => mapping(address target => bool)) private _anySelector;
    mapping(bytes32 sessionId => mapping(address target => mapping(bytes4 selector => bool)))
        private _allowedSelector;

    event AccountInitialized(IEntryPoint indexed entryPoint, address indexed owner);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    event SessionKeyRegistered(
        address indexed key,
        uint48 validAfter,
        uint48 validUntil,
        uint32 callLimit,
        uint128 valuePerCallLimit,
        uint128 valueBudget,
        uint128 gasBudget,
        uint256 permissionCount
    );
    event SessionKeyRevoked(address indexed key);
    event AllSessionKeysRevoked(uint64 newEpoch);
    event SessionKeyUsed(
        address indexed key, uint32 callsUsed, uint128 valueSpent, uint128 gasSpent
    );

    error NotOwnerOrSelf(address caller);
    error NotEntryPointOrOwner(address caller);
    error InvalidOwner(address owner);
    error InvalidSessionKey(address key);
    error InvalidSessionWindow(uint48 validAfter, uint48 validUntil);
    error InvalidPermissionTarget(address target);
    error SessionKeyAlreadyRegistered(address key);
    error SessionKeyNotRegistered(address key);
    error SessionKeyCallDataUnsupported(bytes4 selector);
    error SessionKeyForbiddenTarget(address target);
    error SessionKeyCallNotAllowed(address target, bytes4 selector);
    error SessionKeyValuePerCallExceeded(uint256 value, uint128 limit);
    error SessionKeyValueBudgetExceeded(uint256 requested, uint128 remaining);
    error SessionKeyCallLimitReached(uint256 requested, uint32 remaining);
    error SessionKeyGasBudgetExceeded(uint256 maxCost, uint128 remaining);
    error SessionKeyNonceKeyMismatch(address key, uint192 nonceKey);
    error SessionKeyEmptyBatch();
    error MalformedCallData(uint256 length);

    modifier onlyOwnerOrSelf() {
        if (msg.sender != owner && msg.sender != address(this)) revert NotOwnerOrSelf(msg.sender);
        _;
    }

    constructor(IEntryPoint entryPoint_) {
        _ENTRY_POINT = entryPoint_;
        _disableInitializers();
    }

    /// @notice Sets the owner of a freshly cloned account; the factory calls it in the same
    /// transaction as the clone, so nobody can front-run it.
    function initialize(address owner_) external initializer {
        if (owner_ == address(0)) revert InvalidOwner(owner_);
        owner = owner_;
        emit AccountInitialized(_ENTRY_POINT, owner_);
    }

    receive() external payable {}

    /// @inheritdoc BaseAccount
    function entryPoint() public view override returns (IEntryPoint) {
        return _ENTRY_POINT;
    }

    // ---------------------------------------------------------------------------------------
    // Admin: callable by the owner directly, or by the account through an owner-signed op.
    // ---------------------------------------------------------------------------------------

    /// @notice Hands the account to `newOwner` and voids every session key.
    function transferOwnership(address newOwner) external onlyOwnerOrSelf {
        if (newOwner == address(0) || newOwner == address(this)) revert InvalidOwner(newOwner);
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
        _startNewEpoch();
    }

    /// @notice Registers `key` with a validity window and permissions. A key that is already
    /// registered must be revoked first, so permissions never merge.
    function registerSessionKey(
        address key,
        uint48 validAfter,
        uint48 validUntil,
        SessionPermissions calldata permissions
    ) external onlyOwnerOrSelf {
        if (key == address(0) || key == owner || key == address(this)) {
            revert InvalidSessionKey(key);
        }
        if (validUntil <= validAfter) revert InvalidSessionWindow(validAfter, validUntil);
        bytes32 id = _sessionId(key);
        if (_sessionKeys[id].registered) revert SessionKeyAlreadyRegistered(key);

        _sessionKeys[id] = SessionKey({
            registered: true,
            validAfter: validAfter,
            validUntil: validUntil,
            callLimit: permissions.callLimit,
            callsUsed: 0,
            valuePerCallLimit: permissions.valuePerCallLimit,
            valueBudget: permissions.valueBudget,
            valueSpent: 0,
            gasSpent: 0,
            gasBudget: permissions.gasBudget
        });
        uint256 count = permissions.calls.length;
        for (uint256 i = 0; i < count; i++) {
            CallPermission calldata permission = permissions.calls[i];
            if (_isForbiddenTarget(permission.target)) {
                revert InvalidPermissionTarget(permission.target);
            }
            if (permission.anySelector) {
                _anySelector[id][permission.target] = true;
            } else {
                _allowedSelector[id][permission.target][permission.selector] = true;
            }
        }
        emit SessionKeyRegistered(
            key,
            validAfter,
            validUntil,
            permissions.callLimit,
            permissions.valuePerCallLimit,
            permissions.valueBudget,
            permissions.gasBudget,
            count
        );
    }

    /// @notice Revokes one session key. Registering it again starts from clean permissions.
    function revokeSessionKey(address key) external onlyOwnerOrSelf {
        if (!_sessionKeys[_sessionId(key)].registered) revert SessionKeyNotRegistered(key);
        unchecked {
            _keyGeneration[key]++;
        }
        emit SessionKeyRevoked(key);
    }

    /// @notice Revokes every session key at once.
    function revokeAllSessionKeys() external onlyOwnerOrSelf {
        _startNewEpoch();
    }

    // ---------------------------------------------------------------------------------------
    // Views
    // ---------------------------------------------------------------------------------------

    /// @notice The current state of `key`; `registered` is false for unknown or revoked keys.
    function getSessionKey(address key) external view returns (SessionKey memory) {
        return _sessionKeys[_sessionId(key)];
    }

    /// @notice Whether `key` may call `selector` on `target` under its current registration.
    function isCallAllowed(address key, address target, bytes4 selector)
        external
        view
        returns (bool)
    {
        bytes32 id = _sessionId(key);
        return _sessionKeys[id].registered && _isAllowed(id, target, selector);
    }

    /// @notice ERC-1271. Only the owner's raw ECDSA signature over `hash` is accepted: a session
    /// key can never sign for the account, so it cannot approve permits or log in elsewhere.
    function isValidSignature(bytes32 hash, bytes calldata signature)
        external
        view
        returns (bytes4)
    {
        return _isOwner(_recover(hash, signature)) ? ERC1271_MAGIC_VALUE : ERC1271_INVALID;
    }

    // ---------------------------------------------------------------------------------------
    // ERC-4337 validation
    // ---------------------------------------------------------------------------------------

    /// @dev Accepts a signature over the EIP-191 personal-sign message of `userOpHash`
    /// (what `signMessage({raw: hash})` produces) or over the raw EIP-712 digest (what a wallet
    /// signing the v0.8 typed data produces). Unknown signers get SIG_VALIDATION_FAILED so
    /// that gas estimation with a dummy signature still works; a known session key that breaks
    /// a rule reverts with the rule's error, which the EntryPoint reports as AA23.
    function _validateSignature(PackedUserOperation calldata userOp, bytes32 userOpHash)
        internal
        override
        returns (uint256 validationData)
    {
        address personalSigner =
            _recover(MessageHashUtils.toEthSignedMessageHash(userOpHash), userOp.signature);
        if (_isOwner(personalSigner)) return SIG_VALIDATION_SUCCESS;
        bytes32 id = _sessionId(personalSigner);
        if (_sessionKeys[id].registered) return _validateSessionOp(personalSigner, id, userOp);

        address rawSigner = _recover(userOpHash, userOp.signature);
        if (_isOwner(rawSigner)) return SIG_VALIDATION_SUCCESS;
        id = _sessionId(rawSigner);
        if (_sessionKeys[id].registered) return _validateSessionOp(rawSigner, id, userOp);

        return SIG_VALIDATION_FAILED;
    }

    function _validateSessionOp(address key, bytes32 id, PackedUserOperation calldata userOp)
        private
        returns (uint256)
    {
        uint192 nonceKey = uint192(userOp.nonce >> 64);
        if (uint160(nonceKey >> 32) != uint160(key)) {
            revert SessionKeyNonceKeyMismatch(key, nonceKey);
        }
        SessionKey storage session = _sessionKeys[id];
        (uint256 calls, uint256 value) = _checkCalls(id, session, userOp.callData);
        uint256 gasCost = _maxGasCost(userOp);

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
        emit SessionKeyUsed(key, callsUsed, valueSpent, gasSpent);

        return _packValidationData(false, session.validUntil, session.validAfter);
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
    function _checkCalls(bytes32 id, SessionKey storage session, bytes calldata callData)
        private
        view
        returns (uint256 calls, uint256 value)
    {
        if (callData.length < 4) revert SessionKeyCallDataUnsupported(bytes4(0));
        bytes4 selector = bytes4(callData[:4]);
        if (selector == this.execute.selector) {
            (address target, uint256 callValue, bytes memory data) =
                abi.decode(callData[4:], (address, uint256, bytes));
            _checkCall(id, session, target, callValue, data);
            return (1, callValue);
        }
        if (selector == this.executeBatch.selector) {
            Call[] memory batch = abi.decode(callData[4:], (Call[]));
            // An empty batch would count as no call at all and slip past the call limit.
            if (batch.length == 0) revert SessionKeyEmptyBatch();
            for (uint256 i = 0; i < batch.length; i++) {
                _checkCall(id, session, batch[i].target, batch[i].value, batch[i].data);
                value += batch[i].value;
            }
            return (batch.length, value);
        }
        revert SessionKeyCallDataUnsupported(selector);
    }

    function _checkCall(
        bytes32 id,
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
        if (!_isAllowed(id, target, selector)) revert SessionKeyCallNotAllowed(target, selector);
        uint128 limit = session.valuePerCallLimit;
        if (value > limit) revert SessionKeyValuePerCallExceeded(value, limit);
    }

    // ---------------------------------------------------------------------------------------
    // Internals
    // ---------------------------------------------------------------------------------------

    /// @dev The owner may also drive `execute` directly, without the EntryPoint.
    function _requireForExecute() internal view override {
        if (msg.sender != address(_ENTRY_POINT) && msg.sender != owner) {
            revert NotEntryPointOrOwner(msg.sender);
        }
    }

    function _startNewEpoch() private {
        uint64 epoch = sessionEpoch + 1;
        sessionEpoch = epoch;
        emit AllSessionKeysRevoked(epoch);
    }

    /// @dev address(0) stands for "no valid signature", and the implementation contract behind
    /// the clones has no owner, so it must never match.
    function _isOwner(address signer) private view returns (bool) {
        return signer != address(0) && signer == owner;
    }

    function _sessionId(address key) private view returns (bytes32) {
        return keccak256(abi.encode(sessionEpoch, key, _keyGeneration[key]));
    }

    function _isAllowed(bytes32 id, address target, bytes4 selector) private view returns (bool) {
        return _anySelector[id][target] || _allowedSelector[id][target][selector];
    }

    /// @dev A session key must never reach the account's own functions, nor the EntryPoint,
    /// where the account's deposit and stake live.
    function _isForbiddenTarget(address target) private view returns (bool) {
        return target == address(this) || target == address(_ENTRY_POINT) || target == address(0);
    }

    /// @dev ECDSA recovery that never reverts; address(0) means "no valid signature".
    function _recover(bytes32 hash, bytes calldata signature) private pure returns (address) {
        (address signer, ECDSA.RecoverError error,) = ECDSA.tryRecover(hash, signature);
        return error == ECDSA.RecoverError.NoError ? signer : address(0);
    }
}
