// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {GameItems} from "../src/GameItems.sol";
import {SessionKeyAccount} from "../src/SessionKeyAccount.sol";
import {SignerKind} from "../src/Signers.sol";
import {AccountTestBase} from "./utils/AccountTestBase.sol";
import {BaseAccount} from "@account-abstraction/contracts/core/BaseAccount.sol";
import {IStakeManager} from "@account-abstraction/contracts/interfaces/IStakeManager.sol";
import {
    PackedUserOperation
} from "@account-abstraction/contracts/interfaces/PackedUserOperation.sol";
import {Base64} from "@openzeppelin/contracts/utils/Base64.sol";

/// @notice Every session-key rule, for one key kind on one P-256 path, through the EntryPoint:
/// the window, the call limit (batches included), the allowlist and anySelector, the zero
/// selector, the per-call value limit, the value budget, the gas budget, the nonce lane, the
/// forbidden targets, the op deadline, revoke, revoke-all and re-registration, and malformed
/// signatures. A concrete suite names the kind (`_kind`) and the path
/// (`_p256PrecompileStandIn`); the key signs through `_keySign`, the virtual signer.
abstract contract SessionKeyKindsTest is AccountTestBase {
    uint256 internal constant PRICE = 0.001 ether;
    /// @dev Valid private keys on both curves.
    uint256 internal constant KEY = 0xA5E55;
    uint256 internal constant OTHER_KEY = 0xA5E56;

    SessionKeyAccount internal account;
    Key internal key;
    Key internal otherKey;
    address internal keyId;
    /// @dev The registration setUp makes, which the fuzz tests that need no particular
    /// permissions share, so a fuzz run needs no owner op of its own.
    bytes32 internal standing;

    /// @dev The kind of session key this suite runs.
    function _kind() internal pure virtual returns (SignerKind);

    /// @dev The virtual signer: what `signer` signs for `message`, in the form of the kind.
    function _keySign(Key memory signer, bytes32 message)
        internal
        view
        virtual
        returns (bytes memory)
    {
        return _keySignature(signer, message);
    }

    function setUp() public virtual override {
        super.setUp();
        key = Key({kind: _kind(), privateKey: KEY});
        otherKey = Key({kind: _kind(), privateKey: OTHER_KEY});
        keyId = _idOf(key);
        account = _deploy(0, "");
        vm.label(keyId, "sessionKeyId");
        standing = _registerForADay(_standingPermissions());
    }

    /// @dev Mint on `items`, and plain transfers to `recipient` of up to 1 ether.
    function _standingPermissions()
        internal
        view
        returns (SessionKeyAccount.SessionPermissions memory)
    {
        return _permissions(
            10,
            1 ether,
            1 ether,
            _list(_allow(address(items), GameItems.mint.selector), _allow(recipient, bytes4(0)))
        );
    }

    // ---------------------------------------------------------------------------------------
    // Helpers
    // ---------------------------------------------------------------------------------------

    function _register(
        uint48 validAfter,
        uint48 validUntil,
        SessionKeyAccount.SessionPermissions memory permissions
    ) internal returns (bytes32) {
        return _registerByOp(account, key, validAfter, validUntil, permissions);
    }

    /// @dev Registers `key` for a day with `permissions`.
    function _registerForADay(SessionKeyAccount.SessionPermissions memory permissions)
        internal
        returns (bytes32)
    {
        return _register(NOW - 1, NOW + 1 days, permissions);
    }

    /// @dev An op carrying `callData` in `key`'s first nonce lane, not signed yet.
    function _unsigned(bytes memory callData)
        internal
        view
        returns (PackedUserOperation memory op)
    {
        op = _op(address(account), "", callData);
        op.nonce = entryPoint.getNonce(address(account), _lane(keyId, 0));
    }

    /// @dev `op` signed by `signer` under `registration`, valid until `validUntil`.
    function _signed(
        PackedUserOperation memory op,
        Key memory signer,
        bytes32 registration,
        uint48 validUntil
    ) internal view returns (PackedUserOperation memory) {
        bytes32 message = _sessionOperationHash(
            entryPoint.getUserOpHash(op), registration, validUntil
        );
        op.signature = _sessionFrame(registration, validUntil, _keySign(signer, message));
        return op;
    }

    /// @dev An op carrying `callData`, signed by `key` under its current registration.
    function _keyOp(bytes memory callData) internal view returns (PackedUserOperation memory) {
        return _signed(_unsigned(callData), key, registrationOf[keyId], _opDeadline());
    }

    function _mintOp() internal view returns (PackedUserOperation memory) {
        return _keyOp(_mintCall(address(account)));
    }

    function _payOp(uint256 value) internal view returns (PackedUserOperation memory) {
        return _keyOp(_execute(recipient, value, ""));
    }

    function _rule(bytes memory inner) internal pure returns (bytes memory) {
        return _aa23(inner);
    }

    function _callLimitReached(uint256 requested, uint256 remaining)
        internal
        pure
        returns (bytes memory)
    {
        return _aa23(
            abi.encodeWithSelector(
                SessionKeyAccount.SessionKeyCallLimitReached.selector, requested, uint32(remaining)
            )
        );
    }

    function _notAllowed(address target, bytes4 selector) internal pure returns (bytes memory) {
        return _aa23(
            abi.encodeWithSelector(
                SessionKeyAccount.SessionKeyCallNotAllowed.selector, target, selector
            )
        );
    }

    function _forbidden(address target) internal pure returns (bytes memory) {
        return
            _aa23(
                abi.encodeWithSelector(SessionKeyAccount.SessionKeyForbiddenTarget.selector, target)
            );
    }

    function _valuePermissions(uint128 perCall, uint128 budget)
        internal
        view
        returns (SessionKeyAccount.SessionPermissions memory)
    {
        return _permissions(
            20,
            perCall,
            budget,
            _list(_allow(address(items), GameItems.buy.selector), _allow(recipient, bytes4(0)))
        );
    }

    // ---------------------------------------------------------------------------------------
    // The key's identity
    // ---------------------------------------------------------------------------------------

    function test_kind_registrationStoresTheKeyIdAndKind() public {
        bytes32 registration = _registerForADay(_mintPermissions(5));
        SessionKeyAccount.SessionKey memory state = account.getSessionKey(registration);
        vm.assertTrue(state.registered, "registered");
        vm.assertEq(state.keyId, keyId, "the key's id");
        vm.assertTrue(state.kind == _kind(), "the key's kind");
        vm.assertEq(account.usesP256Precompile(), _p256PrecompileStandIn(), "P-256 path");
        _handleOk(_mintOp());
        vm.assertEq(_balance(account), 1, "minted");
        vm.assertEq(account.getSessionKey(registration).callsUsed, 1, "call counted");
    }

    // ---------------------------------------------------------------------------------------
    // Window
    // ---------------------------------------------------------------------------------------

    function test_window_boundariesAreExclusiveAfterInclusiveUntil() public {
        _register(NOW + 100, NOW + 1000, _mintPermissions(10));
        vm.warp(NOW + 100);
        _handleExpectRevert(_mintOp(), _aa22());
        vm.warp(NOW + 101);
        _handleOk(_mintOp());
        vm.warp(NOW + 1000);
        _handleOk(_mintOp());
        vm.warp(NOW + 1001);
        _handleExpectRevert(_mintOp(), _aa22());
        vm.assertEq(_balance(account), 2, "two mints inside the window");
    }

    function testFuzz_window_acceptedExactlyInside(uint256 validAfter, uint256 length, uint256 at)
        public
    {
        validAfter = bound(validAfter, 0, type(uint40).max);
        length = bound(length, 1, type(uint32).max);
        uint256 validUntil = validAfter + length;
        at = bound(at, 0, validUntil + length);
        _register(uint48(validAfter), uint48(validUntil), _mintPermissions(1));

        vm.warp(at);
        if (at > validAfter && at <= validUntil) {
            _handleOk(_mintOp());
            vm.assertEq(_balance(account), 1, "minted inside the window");
        } else {
            _handleExpectRevert(_mintOp(), _aa22());
        }
    }

    // ---------------------------------------------------------------------------------------
    // Call limit
    // ---------------------------------------------------------------------------------------

    function test_callLimit_batchCountsEveryCall() public {
        _registerForADay(_mintPermissions(3));
        _handleOk(_keyOp(_executeBatch(_mintBatch(address(account), 2))));
        _handleExpectRevert(
            _keyOp(_executeBatch(_mintBatch(address(account), 2))), _callLimitReached(2, 1)
        );
        _handleOk(_mintOp());
        _handleExpectRevert(_mintOp(), _callLimitReached(1, 0));
        vm.assertEq(_callsUsed(account, keyId), 3, "limit reached exactly");
        vm.assertEq(_balance(account), 3, "three items");
    }

    function test_callLimit_emptyBatchRefused() public {
        _registerForADay(_mintPermissions(3));
        _handleExpectRevert(
            _keyOp(_executeBatch(new BaseAccount.Call[](0))),
            _rule(abi.encodeWithSelector(SessionKeyAccount.SessionKeyEmptyBatch.selector))
        );
    }

    function testFuzz_callLimit_batchFitsOrIsRefused(uint256 limit, uint256 used, uint256 size)
        public
    {
        limit = bound(limit, 1, 6);
        used = bound(used, 0, limit);
        size = bound(size, 1, 6);
        _registerForADay(_mintPermissions(uint32(limit)));
        if (used != 0) _handleOk(_keyOp(_executeBatch(_mintBatch(address(account), used))));

        PackedUserOperation memory op =
            size == 1 ? _mintOp() : _keyOp(_executeBatch(_mintBatch(address(account), size)));
        if (used + size <= limit) {
            _handleOk(op);
            vm.assertEq(_callsUsed(account, keyId), used + size, "every call counted");
        } else {
            _handleExpectRevert(op, _callLimitReached(size, limit - used));
            vm.assertEq(_callsUsed(account, keyId), used, "nothing counted");
        }
    }

    // ---------------------------------------------------------------------------------------
    // Allowlist
    // ---------------------------------------------------------------------------------------

    function test_allowlist_selectorAndAnySelector() public {
        bytes32 registration = _registerForADay(
            _permissions(
                10,
                0,
                0,
                _list(
                    _allow(address(items), GameItems.mint.selector), _allowAny(address(otherItems))
                )
            )
        );
        vm.assertTrue(
            account.isCallAllowed(registration, address(items), GameItems.mint.selector), "mint"
        );
        vm.assertFalse(
            account.isCallAllowed(registration, address(items), GameItems.burn.selector), "burn"
        );
        vm.assertTrue(
            account.isCallAllowed(registration, address(otherItems), GameItems.burn.selector),
            "any selector of otherItems"
        );

        _handleOk(_mintOp());
        _handleExpectRevert(
            _keyOp(_execute(address(items), 0, abi.encodeCall(GameItems.burn, (ITEM_ID, 1)))),
            _notAllowed(address(items), GameItems.burn.selector)
        );
        _handleOk(_keyOp(_execute(address(otherItems), 0, _mintData(address(account), 2))));
        _handleOk(
            _keyOp(_execute(address(otherItems), 0, abi.encodeCall(GameItems.burn, (ITEM_ID, 1))))
        );
        vm.assertEq(_balance(account), 1, "minted on items");
        vm.assertEq(otherItems.balanceOf(address(account), ITEM_ID), 1, "two minted, one burnt");
    }

    function testFuzz_allowlist_refusesUnlistedCalls(address target, bytes4 selector) public {
        vm.assume(
            target != address(account) && target != address(entryPoint) && target != address(0)
        );
        vm.assume(target != address(items) || selector != GameItems.mint.selector);
        vm.assume(selector != bytes4(0));
        _handleExpectRevert(
            _keyOp(_execute(target, 0, abi.encodePacked(selector, uint256(1)))),
            _notAllowed(target, selector)
        );
        vm.assertEq(_callsUsed(account, keyId), 0, "nothing counted");
    }

    // ---------------------------------------------------------------------------------------
    // Zero selector
    // ---------------------------------------------------------------------------------------

    function test_zeroSelector_allowsAnEmptyCallOnly() public {
        _registerForADay(_valuePermissions(1 ether, 1 ether));
        _handleOk(_payOp(1 gwei));
        vm.assertEq(recipient.balance, 1 gwei, "paid");
        _handleExpectRevert(
            _keyOp(_execute(recipient, 1 gwei, abi.encodePacked(bytes4(0)))),
            _notAllowed(recipient, bytes4(0))
        );
    }

    function testFuzz_zeroSelector_refusesZeroPrefixedCallData(bytes memory tail, uint256 value)
        public
    {
        value = bound(value, 0, 1 ether);
        _handleExpectRevert(
            _keyOp(_execute(recipient, value, abi.encodePacked(bytes4(0), tail))),
            _notAllowed(recipient, bytes4(0))
        );
    }

    // ---------------------------------------------------------------------------------------
    // Value
    // ---------------------------------------------------------------------------------------

    function test_value_perCallLimit() public {
        _registerForADay(_valuePermissions(uint128(3 * PRICE), uint128(10 * PRICE)));
        _handleOk(_keyOp(_execute(address(items), 3 * PRICE, _buyData(3))));
        _handleExpectRevert(
            _keyOp(_execute(address(items), 4 * PRICE, _buyData(4))),
            _rule(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyValuePerCallExceeded.selector,
                    4 * PRICE,
                    uint128(3 * PRICE)
                )
            )
        );
        vm.assertEq(_balance(account), 3, "three bought");
    }

    function testFuzz_value_perCallLimit(uint256 limit, uint256 value) public {
        limit = bound(limit, 0, 1 ether);
        value = bound(value, 0, 2 ether);
        _registerForADay(_valuePermissions(uint128(limit), 10 ether));
        if (value <= limit) {
            _handleOk(_payOp(value));
            vm.assertEq(recipient.balance, value, "paid");
        } else {
            _handleExpectRevert(
                _payOp(value),
                _rule(
                    abi.encodeWithSelector(
                        SessionKeyAccount.SessionKeyValuePerCallExceeded.selector,
                        value,
                        uint128(limit)
                    )
                )
            );
        }
    }

    function test_value_budgetCountsBatchesAndRefusesOnceSpent() public {
        uint128 budget = uint128(5 * PRICE);
        _registerForADay(_valuePermissions(uint128(3 * PRICE), budget));
        BaseAccount.Call[] memory calls = new BaseAccount.Call[](2);
        calls[0] = _call(recipient, 3 * PRICE, "");
        calls[1] = _call(address(items), 2 * PRICE, _buyData(2));
        _handleOk(_keyOp(_executeBatch(calls)));
        vm.assertEq(_sessionOf(account, keyId).valueSpent, budget, "budget spent by one batch");
        _handleExpectRevert(
            _payOp(1),
            _rule(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyValueBudgetExceeded.selector, uint256(1), 0
                )
            )
        );
    }

    function testFuzz_value_cumulativeBudget(uint256 budget, uint256 first, uint256 second) public {
        budget = bound(budget, 1, 1 ether);
        first = bound(first, 0, budget);
        second = bound(second, 0, budget);
        _registerForADay(_valuePermissions(uint128(budget), uint128(budget)));
        _handleOk(_payOp(first));
        if (first + second <= budget) {
            _handleOk(_payOp(second));
            vm.assertEq(recipient.balance, first + second, "both paid");
        } else {
            _handleExpectRevert(
                _payOp(second),
                _rule(
                    abi.encodeWithSelector(
                        SessionKeyAccount.SessionKeyValueBudgetExceeded.selector,
                        second,
                        uint128(budget - first)
                    )
                )
            );
            vm.assertEq(recipient.balance, first, "only the first paid");
        }
    }

    // ---------------------------------------------------------------------------------------
    // Gas budget
    // ---------------------------------------------------------------------------------------

    function test_gasBudget_refusesTheOpThatWouldExceedIt() public {
        _registerForADay(
            _permissions(
                10,
                0,
                0,
                2 * OP_MAX_GAS_COST,
                _list(_allow(address(items), GameItems.mint.selector))
            )
        );
        _handleOk(_mintOp());
        _handleOk(_mintOp());
        _handleExpectRevert(
            _mintOp(),
            _rule(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyGasBudgetExceeded.selector, OP_MAX_GAS_COST, 0
                )
            )
        );
        vm.assertEq(_sessionOf(account, keyId).gasSpent, 2 * OP_MAX_GAS_COST, "charged");
    }

    function testFuzz_gasBudget_opAcceptedIffItsWorstCaseFits(
        uint128 gasBudget,
        uint256 preVerificationGas,
        uint256 maxFee
    ) public {
        preVerificationGas = bound(preVerificationGas, 21_000, 2_000_000);
        maxFee = bound(maxFee, 1 gwei, 200 gwei);
        gasBudget = uint128(bound(gasBudget, 0, 1 ether));
        _registerForADay(
            _permissions(
                10, 0, 0, gasBudget, _list(_allow(address(items), GameItems.mint.selector))
            )
        );
        PackedUserOperation memory op = _unsigned(_mintCall(address(account)));
        op.preVerificationGas = preVerificationGas;
        op.gasFees = bytes32((maxFee << 128) | maxFee);
        vm.fee(maxFee);
        op = _signed(op, key, registrationOf[keyId], _opDeadline());
        uint256 maxCost = (VERIFICATION_GAS_LIMIT + CALL_GAS_LIMIT + preVerificationGas) * maxFee;
        if (maxCost <= gasBudget) {
            _handleOk(op);
            vm.assertEq(_sessionOf(account, keyId).gasSpent, maxCost, "charged");
        } else {
            _handleExpectRevert(
                op,
                _rule(
                    abi.encodeWithSelector(
                        SessionKeyAccount.SessionKeyGasBudgetExceeded.selector, maxCost, gasBudget
                    )
                )
            );
        }
    }

    // ---------------------------------------------------------------------------------------
    // Nonce lane
    // ---------------------------------------------------------------------------------------

    function _mintIn(uint192 nonceKey) internal view returns (PackedUserOperation memory op) {
        op = _op(address(account), "", _mintCall(address(account)));
        op.nonce = entryPoint.getNonce(address(account), nonceKey);
        op = _signed(op, key, registrationOf[keyId], _opDeadline());
    }

    function _laneMismatch(uint192 nonceKey) internal view returns (bytes memory) {
        return _rule(
            abi.encodeWithSelector(
                SessionKeyAccount.SessionKeyNonceKeyMismatch.selector, keyId, nonceKey
            )
        );
    }

    /// @dev The lanes carry the key's id; for a P-256 key that is the hash-derived id, not the
    /// address the same private key has on secp256k1, nor the id of the other P-256 kind.
    function test_nonce_onlyTheKeysOwnLanes() public {
        _registerForADay(_mintPermissions(10));
        uint256 ownerNonce = entryPoint.getNonce(address(account), 0);
        _handleOk(_mintIn(_lane(keyId, 0)));
        _handleOk(_mintIn(_lane(keyId, 9)));
        vm.assertEq(
            entryPoint.getNonce(address(account), _lane(keyId, 9)),
            (uint256(_lane(keyId, 9)) << 64) | 1,
            "one op in lane 9"
        );
        vm.assertEq(entryPoint.getNonce(address(account), 0), ownerNonce, "owner lane untouched");

        _handleExpectRevert(_mintIn(0), _laneMismatch(0));
        uint192 other = _lane(_idOf(otherKey), 0);
        _handleExpectRevert(_mintIn(other), _laneMismatch(other));
        if (_kind() != SignerKind.Secp256k1) {
            uint192 asAddress = _lane(vm.addr(KEY), 0);
            _handleExpectRevert(_mintIn(asAddress), _laneMismatch(asAddress));
            SignerKind twin = _kind() == SignerKind.P256 ? SignerKind.WebAuthn : SignerKind.P256;
            uint192 asTwin = _lane(_idOf(Key({kind: twin, privateKey: KEY})), 0);
            _handleExpectRevert(_mintIn(asTwin), _laneMismatch(asTwin));
        }
    }

    function testFuzz_nonce_onlyTheKeysOwnLanes(uint192 nonceKey, uint32 subLane) public {
        if (uint160(nonceKey >> 32) == uint160(keyId)) nonceKey ^= uint192(1) << 100;
        _handleExpectRevert(_mintIn(nonceKey), _laneMismatch(nonceKey));
        _handleOk(_mintIn(_lane(keyId, subLane)));
    }

    // ---------------------------------------------------------------------------------------
    // Forbidden targets
    // ---------------------------------------------------------------------------------------

    function test_forbiddenTargets_accountEntryPointAndZero() public {
        _registerForADay(_permissions(10, 1 ether, 1 ether, _list(_allowAny(address(items)))));
        _handleExpectRevert(
            _keyOp(_execute(address(account), 0, abi.encodeCall(account.revokeAllSessionKeys, ()))),
            _forbidden(address(account))
        );
        _handleExpectRevert(
            _keyOp(
                _execute(
                    address(entryPoint),
                    0,
                    abi.encodeCall(IStakeManager.withdrawTo, (payable(stranger), 1 ether))
                )
            ),
            _forbidden(address(entryPoint))
        );
        _handleExpectRevert(_keyOp(_execute(address(0), 1, "")), _forbidden(address(0)));
        vm.assertEq(account.sessionEpoch(), 0, "nothing revoked");
    }

    function testFuzz_forbiddenTargets_anywhereInABatch(
        uint256 size,
        uint256 position,
        uint8 which,
        bytes4 selector
    ) public {
        size = bound(size, 1, 5);
        position = bound(position, 0, size - 1);
        address target = [address(account), address(entryPoint), address(0)][bound(which, 0, 2)];
        BaseAccount.Call[] memory calls = _mintBatch(address(account), size);
        calls[position] = _call(target, 0, abi.encodePacked(selector));
        _handleExpectRevert(_keyOp(_executeBatch(calls)), _forbidden(target));
        vm.assertEq(_callsUsed(account, keyId), 0, "nothing counted");
    }

    // ---------------------------------------------------------------------------------------
    // Deadline
    // ---------------------------------------------------------------------------------------

    /// @dev The op's deadline narrows the registration's window; the wider of the two never
    /// applies.
    function test_deadline_validUntilIsTheEarlierOfOpAndSession() public {
        bytes32 registration = _register(NOW - 1, NOW + 1000, _mintPermissions(10));
        PackedUserOperation memory early =
            _signed(_unsigned(_mintCall(address(account))), key, registration, NOW + 60);

        uint256 snapshot = vm.snapshotState();
        vm.warp(NOW + 60);
        _handleOk(early);
        vm.revertToState(snapshot);
        vm.warp(NOW + 61);
        _handleExpectRevert(early, _aa22());

        // A deadline past the session's end does not stretch the session.
        PackedUserOperation memory late =
            _signed(_unsigned(_mintCall(address(account))), key, registration, NOW + 5000);
        vm.warp(NOW + 1000);
        _handleOk(late);
        late = _signed(_unsigned(_mintCall(address(account))), key, registration, NOW + 5000);
        vm.warp(NOW + 1001);
        _handleExpectRevert(late, _aa22());
    }

    /// @dev A deadline of 0 (no deadline) is a broken rule, once the signature checks out;
    /// with a bad signature it stays a signature error.
    function test_deadline_missingIsRefused() public {
        bytes32 registration = _registerForADay(_mintPermissions(10));
        _handleExpectRevert(
            _signed(_unsigned(_mintCall(address(account))), key, registration, 0),
            _rule(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyOperationDeadlineMissing.selector
                )
            )
        );
        _handleExpectRevert(
            _signed(_unsigned(_mintCall(address(account))), otherKey, registration, 0), _aa24()
        );
    }

    /// @dev Against the standing registration, open until NOW + 1 day.
    function testFuzz_deadline_validUntilIsTheMinimum(uint256 opDeadline, uint256 at) public {
        uint256 sessionUntil = NOW + 1 days;
        opDeadline = bound(opDeadline, 1, type(uint48).max);
        at = bound(at, NOW, NOW + 2 days);
        PackedUserOperation memory op =
            _signed(_unsigned(_mintCall(address(account))), key, standing, uint48(opDeadline));

        vm.warp(at);
        if (at <= opDeadline && at <= sessionUntil) {
            _handleOk(op);
        } else {
            _handleExpectRevert(op, _aa22());
        }
    }

    // ---------------------------------------------------------------------------------------
    // Revoke, revoke-all, re-registration
    // ---------------------------------------------------------------------------------------

    function test_revoke_stopsThatRegistrationOnly() public {
        _registerForADay(_mintPermissions(10));
        bytes32 other =
            _registerByOp(account, otherKey, NOW - 1, NOW + 1 days, _mintPermissions(10));
        _handleOk(_mintOp());
        PackedUserOperation memory unsent = _mintOp();

        _ownerOp(account, _revokeCallData(address(account), registrationOf[keyId]));
        _handleExpectRevert(unsent, _aa24());
        _handleExpectRevert(_mintOp(), _aa24());
        vm.assertTrue(account.getSessionKey(other).registered, "the other key stays");
        _sessionMint(account, otherKey);
        vm.assertEq(_balance(account), 2, "one mint each");
    }

    function testFuzz_revoke_onlyTheRevokedRegistrationStops(uint256 count, uint256 index) public {
        count = bound(count, 2, 3);
        index = bound(index, 0, count - 1);
        bytes32[] memory registrations = new bytes32[](count);
        registrations[0] = standing;
        for (uint256 i = 1; i < count; i++) {
            registrations[i] = _registerForADay(_mintPermissions(5));
        }
        vm.prank(owner);
        account.revokeSessionKey(registrations[index]);
        for (uint256 i = 0; i < count; i++) {
            PackedUserOperation memory op = _signed(
                _unsigned(_mintCall(address(account))), key, registrations[i], _opDeadline()
            );
            if (i == index) {
                _handleExpectRevert(op, _aa24());
            } else {
                _handleOk(op);
            }
        }
        vm.assertEq(_balance(account), count - 1, "every other registration minted");
    }

    function test_revokeAll_voidsEveryRegistration() public {
        bytes32 first = _registerForADay(_mintPermissions(10));
        bytes32 second =
            _registerByOp(account, otherKey, NOW - 1, NOW + 1 days, _mintPermissions(10));
        PackedUserOperation memory unsent = _mintOp();
        _ownerOp(account, _revokeAllCallData(address(account)));
        vm.assertFalse(account.getSessionKey(first).registered, "first void");
        vm.assertFalse(account.getSessionKey(second).registered, "second void");
        _handleExpectRevert(unsent, _aa24());
        _handleExpectRevert(_opBy(account, otherKey, _mintCall(address(account))), _aa24());
    }

    function testFuzz_revokeAll_voidsEveryRegistration(uint256 epochs, bool byOp) public {
        epochs = bound(epochs, 1, 3);
        PackedUserOperation memory unsent = _mintOp();
        for (uint256 i = 0; i < epochs; i++) {
            if (byOp) {
                _ownerOp(account, _revokeAllCallData(address(account)));
            } else {
                vm.prank(owner);
                account.revokeAllSessionKeys();
            }
        }
        vm.assertEq(account.sessionEpoch(), epochs, "epochs");
        _handleExpectRevert(unsent, _aa24());
    }

    /// @dev After revoke, and after revoke-all, the key registered again gets a new id: the op
    /// it signed under the old one stays dead, the new one starts from zero.
    function test_reRegistration_oldOpsStayDeadNewStartsClean() public {
        for (uint256 round = 0; round < 2; round++) {
            bytes32 old = _registerForADay(_mintPermissions(2));
            _handleOk(_mintOp());
            PackedUserOperation memory unsent = _mintOp();
            if (round == 0) {
                _ownerOp(account, _revokeCallData(address(account), old));
            } else {
                _ownerOp(account, _revokeAllCallData(address(account)));
            }
            bytes32 fresh = _registerForADay(_mintPermissions(2));
            vm.assertNotEq(fresh, old, "a new id");
            _handleExpectRevert(unsent, _aa24());
            vm.assertEq(account.getSessionKey(fresh).callsUsed, 0, "clean counters");
            _handleOk(_mintOp());
            _handleOk(_mintOp());
            _handleExpectRevert(_mintOp(), _callLimitReached(1, 0));
        }
    }

    function testFuzz_reRegistration_oldOpsStayDead(uint256 uses, bool revokeAll) public {
        uses = bound(uses, 0, 1);
        bytes32 old = standing;
        for (uint256 i = 0; i < uses; i++) {
            _handleOk(_mintOp());
        }
        PackedUserOperation memory unsent = _mintOp();
        if (revokeAll) {
            _ownerOp(account, _revokeAllCallData(address(account)));
        } else {
            _ownerOp(account, _revokeCallData(address(account), old));
        }
        bytes32 fresh = _registerForADay(_mintPermissions(5));
        _handleExpectRevert(unsent, _aa24());
        vm.assertEq(account.getSessionKey(old).callsUsed, uses, "old counters kept");
        vm.assertEq(account.getSessionKey(fresh).callsUsed, 0, "new counters clean");
        _handleOk(_mintOp());
    }

    // ---------------------------------------------------------------------------------------
    // Signatures
    // ---------------------------------------------------------------------------------------

    /// @dev Broken signatures of the kind: each must give AA24, never a revert.
    function _malformed(bytes memory valid) internal view virtual returns (bytes[] memory list) {
        list = new bytes[](5);
        list[0] = "";
        list[1] = hex"01";
        list[2] = new bytes(64);
        list[3] = new bytes(65);
        list[4] = _cutShort(valid);
    }

    /// @dev `valid` missing its last signature byte.
    function _cutShort(bytes memory valid) internal pure virtual returns (bytes memory) {
        return _truncated(valid, valid.length - 1);
    }

    function _truncated(bytes memory data, uint256 length) internal pure returns (bytes memory) {
        bytes memory out = new bytes(length);
        for (uint256 i = 0; i < length; i++) {
            out[i] = data[i];
        }
        return out;
    }

    /// @dev The op, with `keySignature` in its frame under the current registration.
    function _withKeySignature(PackedUserOperation memory op, uint48 validUntil, bytes memory sig)
        internal
        view
        returns (PackedUserOperation memory)
    {
        op.signature = _sessionFrame(registrationOf[keyId], validUntil, sig);
        return op;
    }

    /// @dev What the key signs for `op` under its current registration.
    function _messageOf(PackedUserOperation memory op, uint48 validUntil)
        internal
        view
        returns (bytes32)
    {
        return
            _sessionOperationHash(entryPoint.getUserOpHash(op), registrationOf[keyId], validUntil);
    }

    function test_signature_malformedGetsAA24() public {
        _registerForADay(_mintPermissions(10));
        PackedUserOperation memory op = _unsigned(_mintCall(address(account)));
        uint48 deadline = _opDeadline();
        bytes memory valid = _keySign(key, _messageOf(op, deadline));
        bytes[] memory list = _malformed(valid);
        for (uint256 i = 0; i < list.length; i++) {
            _handleExpectRevert(_withKeySignature(op, deadline, list[i]), _aa24());
        }
        _handleOk(_withKeySignature(op, deadline, valid));
    }

    function testFuzz_signature_garbageGetsAA24(bytes memory garbage) public {
        PackedUserOperation memory op = _unsigned(_mintCall(address(account)));
        _handleExpectRevert(_withKeySignature(op, _opDeadline(), garbage), _aa24());
    }

    function test_signature_otherKeyOrOtherMessageRefused() public {
        bytes32 registration = _registerForADay(_mintPermissions(10));
        PackedUserOperation memory op = _unsigned(_mintCall(address(account)));
        uint48 deadline = _opDeadline();
        // Another key of the same kind.
        _handleExpectRevert(_signed(op, otherKey, registration, deadline), _aa24());
        // The right key over the bare userOpHash.
        op.signature =
            _sessionFrame(registration, deadline, _keySign(key, entryPoint.getUserOpHash(op)));
        _handleExpectRevert(op, _aa24());
        // The right key presenting its signature as the owner's.
        op.signature = _ownerFrame(_keySign(key, _messageOf(op, deadline)));
        _handleExpectRevert(op, _aa24());
    }

    function testFuzz_signature_anyKeyOfTheKindWorks(uint256 seed) public {
        Key memory fuzzed = _keyOf(_kind(), seed);
        vm.assume(_idOf(fuzzed) != owner);
        bytes32 registration =
            _registerByOp(account, fuzzed, NOW - 1, NOW + 1 days, _mintPermissions(1));
        PackedUserOperation memory op = _op(address(account), "", _mintCall(address(account)));
        op.nonce = entryPoint.getNonce(address(account), _lane(_idOf(fuzzed), 0));
        _handleOk(_signed(op, fuzzed, registration, _opDeadline()));
        vm.assertEq(_balance(account), 1, "minted");
    }
}

/// @notice What only a secp256k1 session key has: ECDSA malleability is refused.
contract SessionKeyKindsSecp256k1Test is SessionKeyKindsTest {
    function _kind() internal pure override returns (SignerKind) {
        return SignerKind.Secp256k1;
    }

    function test_secp256k1_highSRefused() public {
        _registerForADay(_mintPermissions(10));
        PackedUserOperation memory op = _unsigned(_mintCall(address(account)));
        uint48 deadline = _opDeadline();
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(KEY, _messageOf(op, deadline));
        bytes memory high = abi.encodePacked(r, bytes32(SECP256K1_N - uint256(s)), v ^ 1);
        _handleExpectRevert(_withKeySignature(op, deadline, high), _aa24());
        _handleOk(_withKeySignature(op, deadline, abi.encodePacked(r, s, v)));
    }

    /// @dev A secp256k1 session key signs the message raw: EIP-191 is refused.
    function test_secp256k1_personalSignRefused() public {
        _registerForADay(_mintPermissions(10));
        PackedUserOperation memory op = _unsigned(_mintCall(address(account)));
        uint48 deadline = _opDeadline();
        _handleExpectRevert(
            _withKeySignature(op, deadline, _sig(KEY, _personalDigest(_messageOf(op, deadline)))),
            _aa24()
        );
    }
}

/// @notice What the P-256 kinds share: high s is accepted on both paths (WebCrypto may produce
/// it), r and s out of range are refused, and verification goes through 0x100 exactly when
/// the implementation chose the precompile.
abstract contract P256SessionKeyKindsTest is SessionKeyKindsTest {
    /// @dev `keySignature` with s replaced by `s`.
    function _withS(bytes memory keySignature, bytes32 s)
        internal
        view
        virtual
        returns (bytes memory);

    /// @dev `keySignature` with r replaced by `r`.
    function _withR(bytes memory keySignature, bytes32 r)
        internal
        view
        virtual
        returns (bytes memory);

    /// @dev The s of `keySignature`.
    function _sOf(bytes memory keySignature) internal pure virtual returns (bytes32);

    function test_p256_highSAccepted() public {
        _registerForADay(_mintPermissions(10));
        PackedUserOperation memory op = _unsigned(_mintCall(address(account)));
        uint48 deadline = _opDeadline();
        bytes memory low = _keySign(key, _messageOf(op, deadline));
        bytes32 s = _sOf(low);
        vm.assertLe(uint256(s), P256_N / 2, "signed low s");
        _handleOk(_withKeySignature(op, deadline, _withS(low, bytes32(P256_N - uint256(s)))));
        vm.assertEq(_balance(account), 1, "the high-s signature minted");
    }

    function testFuzz_p256_highOrLowSAccepted(uint256 seed, bool high) public {
        Key memory fuzzed = _keyOf(_kind(), seed);
        bytes32 registration =
            _registerByOp(account, fuzzed, NOW - 1, NOW + 1 days, _mintPermissions(1));
        PackedUserOperation memory op = _op(address(account), "", _mintCall(address(account)));
        op.nonce = entryPoint.getNonce(address(account), _lane(_idOf(fuzzed), 0));
        uint48 deadline = _opDeadline();
        bytes memory sig = _keySign(
            fuzzed, _sessionOperationHash(entryPoint.getUserOpHash(op), registration, deadline)
        );
        if (high) sig = _withS(sig, bytes32(P256_N - uint256(_sOf(sig))));
        op.signature = _sessionFrame(registration, deadline, sig);
        _handleOk(op);
    }

    function test_p256_outOfRangeRAndSRefused() public {
        _registerForADay(_mintPermissions(10));
        PackedUserOperation memory op = _unsigned(_mintCall(address(account)));
        uint48 deadline = _opDeadline();
        bytes memory valid = _keySign(key, _messageOf(op, deadline));
        bytes32[3] memory bad = [bytes32(0), bytes32(P256_N), bytes32(type(uint256).max)];
        for (uint256 i = 0; i < bad.length; i++) {
            _handleExpectRevert(_withKeySignature(op, deadline, _withR(valid, bad[i])), _aa24());
            _handleExpectRevert(_withKeySignature(op, deadline, _withS(valid, bad[i])), _aa24());
        }
        _handleOk(_withKeySignature(op, deadline, valid));
    }

    /// @dev With 0x100 answering "valid" to everything, a bad signature passes exactly when the
    /// account uses the precompile; with 0x100 answering nothing, a good one fails exactly
    /// then. The Solidity path never looks at 0x100.
    function test_p256_pathIsTheOneTheImplementationChose() public {
        _registerForADay(_mintPermissions(10));
        bool precompile = _p256PrecompileStandIn();
        PackedUserOperation memory op = _unsigned(_mintCall(address(account)));
        uint48 deadline = _opDeadline();
        bytes memory valid = _keySign(key, _messageOf(op, deadline));
        bytes memory wrong = _keySign(otherKey, _messageOf(op, deadline));

        uint256 snapshot = vm.snapshotState();
        // PUSH1 1 PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN: "valid", whatever the input.
        vm.etch(P256_PRECOMPILE, hex"600160005260206000f3");
        if (precompile) _handleOk(_withKeySignature(op, deadline, wrong));
        else _handleExpectRevert(_withKeySignature(op, deadline, wrong), _aa24());
        vm.revertToState(snapshot);

        // STOP: succeeds and returns nothing, as the precompile does for a bad signature.
        vm.etch(P256_PRECOMPILE, hex"00");
        if (precompile) _handleExpectRevert(_withKeySignature(op, deadline, valid), _aa24());
        else _handleOk(_withKeySignature(op, deadline, valid));
    }
}

/// @notice A raw P-256 key signs sha256(message) and gives `r ‖ s`, as WebCrypto does.
abstract contract RawP256SessionKeyKindsTest is P256SessionKeyKindsTest {
    function _kind() internal pure override returns (SignerKind) {
        return SignerKind.P256;
    }

    function _withS(bytes memory keySignature, bytes32 s)
        internal
        pure
        override
        returns (bytes memory)
    {
        return abi.encodePacked(bytes32(_wordAt(keySignature, 0)), s);
    }

    function _withR(bytes memory keySignature, bytes32 r)
        internal
        pure
        override
        returns (bytes memory)
    {
        return abi.encodePacked(r, bytes32(_wordAt(keySignature, 32)));
    }

    function _sOf(bytes memory keySignature) internal pure override returns (bytes32) {
        return bytes32(_wordAt(keySignature, 32));
    }

    function _wordAt(bytes memory data, uint256 offset) internal pure returns (uint256 word) {
        assembly ("memory-safe") {
            word := mload(add(add(data, 32), offset))
        }
    }

    function _malformed(bytes memory valid) internal view override returns (bytes[] memory list) {
        bytes[] memory base = super._malformed(valid);
        list = new bytes[](base.length + 2);
        for (uint256 i = 0; i < base.length; i++) {
            list[i] = base[i];
        }
        // One byte too many, and a WebAuthn assertion where r ‖ s belongs.
        list[base.length] = abi.encodePacked(valid, uint8(0));
        list[base.length + 1] = _webAuthn(KEY, keccak256("anything"));
    }

    /// @dev The key signs sha256(message), not the message itself.
    function test_p256_signsTheSha256OfTheMessage() public {
        _registerForADay(_mintPermissions(10));
        PackedUserOperation memory op = _unsigned(_mintCall(address(account)));
        uint48 deadline = _opDeadline();
        (bytes32 r, bytes32 s) = _p256Sign(KEY, _messageOf(op, deadline));
        _handleExpectRevert(_withKeySignature(op, deadline, abi.encodePacked(r, s)), _aa24());
        (r, s) = _p256Sign(KEY, sha256(abi.encodePacked(_messageOf(op, deadline))));
        _handleOk(_withKeySignature(op, deadline, abi.encodePacked(r, s)));
    }
}

/// @notice A WebAuthn session key signs an assertion whose challenge is the message; the
/// account checks the type, the challenge, the UP and UV flags, and that BS implies BE.
abstract contract WebAuthnSessionKeyKindsTest is P256SessionKeyKindsTest {
    function _kind() internal pure override returns (SignerKind) {
        return SignerKind.WebAuthn;
    }

    struct Parts {
        bytes32 r;
        bytes32 s;
        uint256 challengeIndex;
        uint256 typeIndex;
        bytes authenticatorData;
        string clientDataJSON;
    }

    function _decode(bytes memory assertion) internal pure returns (Parts memory p) {
        (p.r, p.s, p.challengeIndex, p.typeIndex, p.authenticatorData, p.clientDataJSON) =
            abi.decode(assertion, (bytes32, bytes32, uint256, uint256, bytes, string));
    }

    function _encode(Parts memory p) internal pure returns (bytes memory) {
        return _encodeAssertion(
            p.r, p.s, p.challengeIndex, p.typeIndex, p.authenticatorData, p.clientDataJSON
        );
    }

    function _withS(bytes memory keySignature, bytes32 s)
        internal
        pure
        override
        returns (bytes memory)
    {
        Parts memory p = _decode(keySignature);
        p.s = s;
        return _encode(p);
    }

    function _withR(bytes memory keySignature, bytes32 r)
        internal
        pure
        override
        returns (bytes memory)
    {
        Parts memory p = _decode(keySignature);
        p.r = r;
        return _encode(p);
    }

    function _sOf(bytes memory keySignature) internal pure override returns (bytes32) {
        return _decode(keySignature).s;
    }

    /// @dev The last word of an assertion holds at least one byte of the client data; the
    /// bytes after it are ABI padding, which the account does not read.
    function _cutShort(bytes memory valid) internal pure override returns (bytes memory) {
        return _truncated(valid, valid.length - 32);
    }

    function _malformed(bytes memory valid) internal view override returns (bytes[] memory list) {
        bytes[] memory base = super._malformed(valid);
        Parts memory p = _decode(valid);
        list = new bytes[](base.length + 4);
        for (uint256 i = 0; i < base.length; i++) {
            list[i] = base[i];
        }
        // A raw r ‖ s where an assertion belongs.
        list[base.length] = abi.encodePacked(p.r, p.s);
        // The head only, with offsets pointing past the end.
        list[base.length + 1] = _truncated(valid, 0xc0);
        // Indexes past the end of the client data.
        Parts memory far = _decode(valid);
        far.challengeIndex = type(uint256).max;
        list[base.length + 2] = _encode(far);
        far = _decode(valid);
        far.typeIndex = bytes(far.clientDataJSON).length;
        list[base.length + 3] = _encode(far);
    }

    /// @dev An assertion by `key` over `message`, with the given flags and client data.
    function _assertion(bytes1 flags, string memory clientDataJSON, uint256 challengeIndex)
        internal
        pure
        returns (bytes memory)
    {
        return _webAuthn(KEY, _authenticatorData(flags), clientDataJSON, challengeIndex);
    }

    function _expectRefused(PackedUserOperation memory op, uint48 deadline, bytes memory sig)
        internal
    {
        _handleExpectRevert(_withKeySignature(op, deadline, sig), _aa24());
    }

    function test_webAuthn_wrongChallengeRefused() public {
        _registerForADay(_mintPermissions(10));
        PackedUserOperation memory op = _unsigned(_mintCall(address(account)));
        uint48 deadline = _opDeadline();
        bytes32 message = _messageOf(op, deadline);
        uint256 at = _challengeIndex("webauthn.get");

        // Another message, the bare userOpHash, and the padded base64 of the message.
        _expectRefused(
            op, deadline, _assertion(FLAGS_UP_UV, _clientDataJSON("webauthn.get", ~message), at)
        );
        _expectRefused(
            op,
            deadline,
            _assertion(
                FLAGS_UP_UV, _clientDataJSON("webauthn.get", entryPoint.getUserOpHash(op)), at
            )
        );
        string memory padded = string.concat(
            '{"type":"webauthn.get","challenge":"',
            Base64.encode(abi.encodePacked(message)),
            '","origin":"',
            ORIGIN,
            '"}'
        );
        _expectRefused(op, deadline, _assertion(FLAGS_UP_UV, padded, at));
        // The right client data, the challenge index off by one.
        _expectRefused(
            op, deadline, _assertion(FLAGS_UP_UV, _clientDataJSON("webauthn.get", message), at + 1)
        );
        _handleOk(
            _withKeySignature(
                op, deadline, _assertion(FLAGS_UP_UV, _clientDataJSON("webauthn.get", message), at)
            )
        );
    }

    function test_webAuthn_missingUserPresenceOrVerificationRefused() public {
        _registerForADay(_mintPermissions(10));
        PackedUserOperation memory op = _unsigned(_mintCall(address(account)));
        uint48 deadline = _opDeadline();
        string memory clientData = _clientDataJSON("webauthn.get", _messageOf(op, deadline));
        uint256 at = _challengeIndex("webauthn.get");
        _expectRefused(op, deadline, _assertion(FLAG_UV, clientData, at));
        _expectRefused(op, deadline, _assertion(FLAG_UP, clientData, at));
        _expectRefused(op, deadline, _assertion(0x00, clientData, at));
        _handleOk(_withKeySignature(op, deadline, _assertion(FLAGS_UP_UV, clientData, at)));
    }

    function test_webAuthn_backedUpWithoutBackupEligibilityRefused() public {
        _registerForADay(_mintPermissions(10));
        PackedUserOperation memory op = _unsigned(_mintCall(address(account)));
        uint48 deadline = _opDeadline();
        string memory clientData = _clientDataJSON("webauthn.get", _messageOf(op, deadline));
        uint256 at = _challengeIndex("webauthn.get");
        _expectRefused(op, deadline, _assertion(FLAGS_UP_UV | FLAG_BS, clientData, at));
        // BE alone, and BE with BS (a synced passkey), are fine.
        uint256 snapshot = vm.snapshotState();
        _handleOk(
            _withKeySignature(op, deadline, _assertion(FLAGS_UP_UV | FLAG_BE, clientData, at))
        );
        vm.revertToState(snapshot);
        _handleOk(
            _withKeySignature(
                op, deadline, _assertion(FLAGS_UP_UV | FLAG_BE | FLAG_BS, clientData, at)
            )
        );
    }

    function test_webAuthn_wrongTypeRefused() public {
        _registerForADay(_mintPermissions(10));
        PackedUserOperation memory op = _unsigned(_mintCall(address(account)));
        uint48 deadline = _opDeadline();
        bytes32 message = _messageOf(op, deadline);
        // A registration ceremony's client data.
        _expectRefused(
            op,
            deadline,
            _assertion(
                FLAGS_UP_UV,
                _clientDataJSON("webauthn.create", message),
                _challengeIndex("webauthn.create")
            )
        );
        // The right type, announced at the wrong index.
        Parts memory p = _decode(
            _assertion(
                FLAGS_UP_UV,
                _clientDataJSON("webauthn.get", message),
                _challengeIndex("webauthn.get")
            )
        );
        p.typeIndex = 0;
        _expectRefused(op, deadline, _encode(p));
    }

    function test_webAuthn_shortAuthenticatorDataRefused() public {
        _registerForADay(_mintPermissions(10));
        PackedUserOperation memory op = _unsigned(_mintCall(address(account)));
        uint48 deadline = _opDeadline();
        string memory clientData = _clientDataJSON("webauthn.get", _messageOf(op, deadline));
        // rpIdHash ‖ flags ‖ 3 of the 4 signCount bytes: 36 bytes.
        bytes memory short = abi.encodePacked(sha256(bytes(RP_ID)), FLAGS_UP_UV, uint24(7));
        _expectRefused(
            op, deadline, _webAuthn(KEY, short, clientData, _challengeIndex("webauthn.get"))
        );
    }

    /// @dev The assertion is the flat tuple (r, s, challengeIndex, typeIndex, authenticatorData,
    /// clientDataJSON). Solidity's `abi.encode(auth)` of the `WebAuthnAuth` struct puts a
    /// 32-byte offset in front, since the struct is dynamic: that form is refused.
    function test_webAuthn_structEncodingWithLeadingOffsetRefused() public {
        _registerForADay(_mintPermissions(10));
        PackedUserOperation memory op = _unsigned(_mintCall(address(account)));
        uint48 deadline = _opDeadline();
        bytes memory flat = _keySign(key, _messageOf(op, deadline));
        _expectRefused(op, deadline, abi.encode(_decode(flat)));
        _handleOk(_withKeySignature(op, deadline, flat));
    }

    /// @dev Real client data may carry more fields, in any order: only the type and challenge
    /// at their indexes count.
    function test_webAuthn_clientDataWithOtherFieldsAccepted() public {
        _registerForADay(_mintPermissions(10));
        PackedUserOperation memory op = _unsigned(_mintCall(address(account)));
        uint48 deadline = _opDeadline();
        string memory clientData = string.concat(
            '{"type":"webauthn.get","origin":"',
            ORIGIN,
            '","challenge":"',
            Base64.encodeURL(abi.encodePacked(_messageOf(op, deadline))),
            '","other_keys_can_be_added_here":"do not compare clientDataJSON against a template"}'
        );
        uint256 at = bytes(string.concat('{"type":"webauthn.get","origin":"', ORIGIN, '",')).length;
        _handleOk(_withKeySignature(op, deadline, _assertion(FLAGS_UP_UV, clientData, at)));
    }

    function testFuzz_webAuthn_acceptedIffTheFlagsAreRight(uint8 flags) public {
        PackedUserOperation memory op = _unsigned(_mintCall(address(account)));
        uint48 deadline = _opDeadline();
        bytes1 f = bytes1(flags);
        bytes memory sig = _assertion(
            f,
            _clientDataJSON("webauthn.get", _messageOf(op, deadline)),
            _challengeIndex("webauthn.get")
        );
        bool up = f & FLAG_UP != 0;
        bool uv = f & FLAG_UV != 0;
        bool backupOk = f & FLAG_BS == 0 || f & FLAG_BE != 0;
        if (up && uv && backupOk) _handleOk(_withKeySignature(op, deadline, sig));
        else _expectRefused(op, deadline, sig);
    }
}

contract SessionKeyKindsP256SolidityTest is RawP256SessionKeyKindsTest {}

contract SessionKeyKindsP256PrecompileTest is RawP256SessionKeyKindsTest {
    function _p256PrecompileStandIn() internal pure override returns (bool) {
        return true;
    }
}

contract SessionKeyKindsWebAuthnSolidityTest is WebAuthnSessionKeyKindsTest {}

contract SessionKeyKindsWebAuthnPrecompileTest is WebAuthnSessionKeyKindsTest {
    function _p256PrecompileStandIn() internal pure override returns (bool) {
        return true;
    }
}
