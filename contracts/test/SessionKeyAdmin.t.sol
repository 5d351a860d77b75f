// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {GameItems} from "../src/GameItems.sol";
import {SessionKeyAccount} from "../src/SessionKeyAccount.sol";
import {Signer, SignerKind} from "../src/Signers.sol";
import {AccountTestBase} from "./utils/AccountTestBase.sol";
import {BaseAccount} from "@account-abstraction/contracts/core/BaseAccount.sol";
import {IStakeManager} from "@account-abstraction/contracts/interfaces/IStakeManager.sol";
import {
    PackedUserOperation
} from "@account-abstraction/contracts/interfaces/PackedUserOperation.sol";

/// @notice Rule 6: a session key never reaches the account's admin functions, nor the
/// EntryPoint; admin functions answer only to the owner or the account itself.
contract SessionKeyForbiddenTargetTest is AccountTestBase {
    SessionKeyAccount internal account;

    function setUp() public override {
        super.setUp();
        // anySelector on items, so only the forbidden-target rule can refuse what follows.
        account = _deployWithSession(
            _permissions(10, 1 ether, 1 ether, _list(_allowAny(address(items))))
        );
    }

    function _forbidden(address target) internal pure returns (bytes memory) {
        return
            _aa23(
                abi.encodeWithSelector(SessionKeyAccount.SessionKeyForbiddenTarget.selector, target)
            );
    }

    function _unsupported(bytes4 selector) internal pure returns (bytes memory) {
        return _aa23(
            abi.encodeWithSelector(
                SessionKeyAccount.SessionKeyCallDataUnsupported.selector, selector
            )
        );
    }

    function test_sessionKey_cannotRegisterKeysThroughTheAccount() public {
        _handleExpectRevert(
            _opBy(
                account,
                sessionKey,
                _registerCallData(
                    address(account), secondSession, NOW - 1, NOW + 1 days, _mintPermissions(100)
                )
            ),
            _forbidden(address(account))
        );
        vm.assertFalse(_sessionOf(account, secondSession).registered, "no key registered");
    }

    function test_sessionKey_cannotTransferOwnership() public {
        _handleExpectRevert(
            _opBy(
                account,
                sessionKey,
                _execute(
                    address(account),
                    0,
                    abi.encodeCall(account.transferOwnership, (_ethSigner(stranger)))
                )
            ),
            _forbidden(address(account))
        );
        vm.assertEq(account.owner(), owner, "owner unchanged");
    }

    function test_sessionKey_cannotRevokeOrPayItself() public {
        _handleExpectRevert(
            _opBy(
                account,
                sessionKey,
                _execute(address(account), 0, abi.encodeCall(account.revokeAllSessionKeys, ()))
            ),
            _forbidden(address(account))
        );
        _handleExpectRevert(
            _opBy(account, sessionKey, _execute(address(account), 1, "")),
            _forbidden(address(account))
        );
    }

    function test_sessionKey_cannotCallTheEntryPoint() public {
        _handleExpectRevert(
            _opBy(
                account,
                sessionKey,
                _execute(
                    address(entryPoint),
                    0,
                    abi.encodeCall(IStakeManager.withdrawTo, (payable(stranger), 1 ether))
                )
            ),
            _forbidden(address(entryPoint))
        );
        _handleExpectRevert(
            _opBy(
                account,
                sessionKey,
                _execute(
                    address(entryPoint),
                    1 ether,
                    abi.encodeCall(IStakeManager.depositTo, (stranger))
                )
            ),
            _forbidden(address(entryPoint))
        );
    }

    function test_sessionKey_cannotCallTheZeroAddress() public {
        _handleExpectRevert(
            _opBy(account, sessionKey, _execute(address(0), 0, "")), _forbidden(address(0))
        );
    }

    function test_sessionKey_selfCallInsideBatchRefused() public {
        BaseAccount.Call[] memory calls = _mintBatch(address(account), 3);
        calls[1] = _call(
            address(account), 0, abi.encodeCall(account.transferOwnership, (_ethSigner(stranger)))
        );
        _handleExpectRevert(
            _opBy(account, sessionKey, _executeBatch(calls)), _forbidden(address(account))
        );
        vm.assertEq(_balance(account), 0, "nothing minted");
    }

    function test_sessionKey_adminCallDataIsUnsupported() public {
        bytes memory register = _registerData(
            _newRegistration(secondSession),
            _ethSigner(secondSession),
            NOW - 1,
            NOW + 1 days,
            _mintPermissions(100)
        );
        _handleExpectRevert(
            _opBy(account, sessionKey, register),
            _unsupported(SessionKeyAccount.registerSessionKey.selector)
        );
        _handleExpectRevert(
            _opBy(
                account,
                sessionKey,
                abi.encodeCall(account.transferOwnership, (_ethSigner(stranger)))
            ),
            _unsupported(SessionKeyAccount.transferOwnership.selector)
        );
        _handleExpectRevert(
            _opBy(
                account,
                sessionKey,
                abi.encodeCall(account.revokeSessionKey, (registrationOf[session]))
            ),
            _unsupported(SessionKeyAccount.revokeSessionKey.selector)
        );
        // Empty or selector-less call data.
        _handleExpectRevert(_opBy(account, sessionKey, ""), _unsupported(bytes4(0)));
        _handleExpectRevert(_opBy(account, sessionKey, hex"b61d27"), _unsupported(bytes4(0)));
    }

    function test_register_refusesPermissionOnAccountOrEntryPoint() public {
        address[3] memory targets = [address(account), address(entryPoint), address(0)];
        for (uint256 i = 0; i < targets.length; i++) {
            _expectRegistrationRefused(
                _list(
                    _allow(address(items), GameItems.mint.selector),
                    _allow(targets[i], SessionKeyAccount.transferOwnership.selector)
                ),
                targets[i]
            );
        }
        // Directly from the owner EOA, as an anySelector entry.
        SessionKeyAccount.SessionPermissions memory permissions =
            _permissions(5, 0, 0, _list(_allowAny(address(account))));
        bytes32 registration = _newRegistration(secondSession);
        vm.prank(owner);
        vm.expectRevert(
            abi.encodeWithSelector(
                SessionKeyAccount.InvalidPermissionTarget.selector, address(account)
            )
        );
        account.registerSessionKey(
            registration, _ethSigner(secondSession), NOW - 1, NOW + 1 days, permissions
        );
        vm.assertFalse(_sessionOf(account, secondSession).registered, "not registered");
    }

    function test_admin_strangerGetsNotOwnerOrSelf() public {
        bytes memory err =
            abi.encodeWithSelector(SessionKeyAccount.NotOwnerOrSelf.selector, stranger);
        SessionKeyAccount.SessionPermissions memory permissions = _mintPermissions(1);
        bytes32 registration = _newRegistration(secondSession);
        Signer memory key = _ethSigner(secondSession);
        Signer memory newOwner = _ethSigner(stranger);
        bytes32 sessionRegistration = registrationOf[session];
        vm.startPrank(stranger, stranger);
        vm.expectRevert(err);
        account.registerSessionKey(registration, key, NOW - 1, NOW + 1 days, permissions);
        vm.expectRevert(err);
        account.revokeSessionKey(sessionRegistration);
        vm.expectRevert(err);
        account.revokeAllSessionKeys();
        vm.expectRevert(err);
        account.transferOwnership(newOwner);
        vm.expectRevert(
            abi.encodeWithSelector(SessionKeyAccount.NotEntryPointOrOwner.selector, stranger)
        );
        account.execute(address(items), 0, _mintData(address(account), 1));
        vm.stopPrank();

        // The session key's own address is a stranger to the admin functions too.
        vm.prank(session, session);
        vm.expectRevert(abi.encodeWithSelector(SessionKeyAccount.NotOwnerOrSelf.selector, session));
        account.revokeAllSessionKeys();
        vm.assertEq(account.owner(), owner, "owner unchanged");
        vm.assertEq(account.sessionEpoch(), 0, "epoch unchanged");
    }

    function testFuzz_sessionKey_forbiddenTargetAnywhereInBatch(
        uint256 size,
        uint256 position,
        uint8 which,
        bytes4 selector,
        uint256 value
    ) public {
        size = bound(size, 1, 6);
        position = bound(position, 0, size - 1);
        address target = [address(account), address(entryPoint), address(0)][bound(which, 0, 2)];
        value = bound(value, 0, 1 ether);

        BaseAccount.Call[] memory calls = _mintBatch(address(account), size);
        calls[position] = _call(target, value, abi.encodePacked(selector));
        bytes memory callData =
            size == 1 ? _execute(target, value, abi.encodePacked(selector)) : _executeBatch(calls);
        _handleExpectRevert(_opBy(account, sessionKey, callData), _forbidden(target));
        vm.assertEq(_callsUsed(account, session), 0, "no call counted");
    }

    function testFuzz_sessionKey_onlyExecuteCallDataSupported(bytes4 selector, bytes memory tail)
        public
    {
        vm.assume(selector != BaseAccount.execute.selector);
        vm.assume(selector != BaseAccount.executeBatch.selector);
        _handleExpectRevert(
            _opBy(account, sessionKey, abi.encodePacked(selector, tail)), _unsupported(selector)
        );
    }

    function testFuzz_register_refusesForbiddenPermissionTarget(
        uint256 count,
        uint256 position,
        uint8 which,
        bool anySelector
    ) public {
        count = bound(count, 1, 4);
        position = bound(position, 0, count - 1);
        address target = [address(account), address(entryPoint), address(0)][bound(which, 0, 2)];

        SessionKeyAccount.CallPermission[] memory calls =
            new SessionKeyAccount.CallPermission[](count);
        for (uint256 i = 0; i < count; i++) {
            calls[i] = _allow(address(items), bytes4(uint32(i)));
        }
        calls[position] = anySelector
            ? _allowAny(target)
            : _allow(target, SessionKeyAccount.registerSessionKey.selector);
        _expectRegistrationRefused(calls, target);
    }

    /// @dev An owner op registering `calls` for `secondSession` fails with
    /// InvalidPermissionTarget(`target`) and registers nothing.
    function _expectRegistrationRefused(
        SessionKeyAccount.CallPermission[] memory calls,
        address target
    ) internal {
        bytes memory callData = _registerCallData(
            address(account), secondSession, NOW - 1, NOW + 1 days, _permissions(5, 0, 0, calls)
        );
        _handleExpectExecutionRevert(
            _opBy(account, ownerKey, callData),
            abi.encodeWithSelector(SessionKeyAccount.InvalidPermissionTarget.selector, target)
        );
        vm.assertFalse(_sessionOf(account, secondSession).registered, "not registered");
    }

    function testFuzz_admin_strangerRefused(address caller) public {
        vm.assume(caller != owner && caller != address(account));
        vm.prank(caller);
        vm.expectRevert(abi.encodeWithSelector(SessionKeyAccount.NotOwnerOrSelf.selector, caller));
        account.transferOwnership(_ethSigner(caller));
        vm.prank(caller);
        vm.expectRevert(abi.encodeWithSelector(SessionKeyAccount.NotOwnerOrSelf.selector, caller));
        account.revokeSessionKey(registrationOf[session]);
        vm.assertTrue(_sessionOf(account, session).registered, "key still registered");
    }
}

/// @notice Rule 7: revoking a registration, revoking all keys, or rotating the owner stops the
/// affected signers at signature validation (AA24). Revoking is final.
contract SessionKeyRevocationTest is AccountTestBase {
    uint256 internal constant NEW_OWNER_KEY = 0x0E11E2;

    SessionKeyAccount internal account;

    function setUp() public override {
        super.setUp();
        account = _deployWithSession(_mintPermissions(10));
        _registerByOp(account, secondSession, NOW - 1, NOW + 1 days, _mintPermissions(10));
        _sessionMint(account, sessionKey);
        _sessionMint(account, secondSessionKey);
    }

    function _expectSignatureError(uint256 privateKey) internal {
        _handleExpectRevert(_opBy(account, privateKey, _mintCall(address(account))), _aa24());
    }

    function test_revokedKey_refusedAfterOwnerOpRevoke() public {
        _ownerOp(
            account,
            _execute(
                address(account),
                0,
                abi.encodeCall(account.revokeSessionKey, (registrationOf[session]))
            )
        );
        _expectSignatureError(sessionKey);
        vm.assertFalse(_sessionOf(account, session).registered, "revoked");
        vm.assertFalse(
            account.isCallAllowed(registrationOf[session], address(items), GameItems.mint.selector),
            "nothing allowed"
        );
        // The other key is untouched.
        _sessionMint(account, secondSessionKey);
    }

    function test_revokedKey_refusedAfterOwnerEoaRevoke() public {
        vm.prank(owner);
        account.revokeSessionKey(registrationOf[session]);
        _expectSignatureError(sessionKey);
        _sessionMint(account, secondSessionKey);
    }

    function test_revoke_unknownRegistrationReverts() public {
        bytes32[2] memory unknown = [keccak256("never registered"), bytes32(0)];
        for (uint256 i = 0; i < unknown.length; i++) {
            vm.prank(owner);
            vm.expectRevert(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyNotRegistered.selector, unknown[i]
                )
            );
            account.revokeSessionKey(unknown[i]);
        }

        // A revoked registration cannot be revoked again.
        bytes32 registration = registrationOf[session];
        vm.prank(owner);
        account.revokeSessionKey(registration);
        vm.prank(owner);
        vm.expectRevert(
            abi.encodeWithSelector(SessionKeyAccount.SessionKeyNotRegistered.selector, registration)
        );
        account.revokeSessionKey(registration);

        // Nor one that revoking all keys voided.
        bytes32 other = registrationOf[secondSession];
        vm.prank(owner);
        account.revokeAllSessionKeys();
        vm.prank(owner);
        vm.expectRevert(
            abi.encodeWithSelector(SessionKeyAccount.SessionKeyNotRegistered.selector, other)
        );
        account.revokeSessionKey(other);
    }

    /// @dev Revoking is final: the revoked id cannot be registered again, for any key.
    function test_revoke_isFinal() public {
        bytes32 registration = registrationOf[session];
        vm.prank(owner);
        account.revokeSessionKey(registration);

        SessionKeyAccount.SessionPermissions memory permissions = _mintPermissions(10);
        address[2] memory keys = [session, stranger];
        for (uint256 i = 0; i < keys.length; i++) {
            Signer memory key = _ethSigner(keys[i]);
            vm.prank(owner);
            vm.expectRevert(
                abi.encodeWithSelector(
                    SessionKeyAccount.RegistrationAlreadyUsed.selector, registration
                )
            );
            account.registerSessionKey(registration, key, NOW - 1, NOW + 1 days, permissions);
        }
        vm.assertFalse(account.getSessionKey(registration).registered, "still revoked");
        _expectSignatureError(sessionKey);
    }

    function test_revokeAll_voidsEveryKey() public {
        _ownerOp(
            account, _execute(address(account), 0, abi.encodeCall(account.revokeAllSessionKeys, ()))
        );
        vm.assertEq(account.sessionEpoch(), 1, "new epoch");
        _expectSignatureError(sessionKey);
        _expectSignatureError(secondSessionKey);
        // The owner is unaffected.
        _ownerOp(account, _mintCall(address(account)));
        vm.assertEq(_balance(account), 3, "owner minted");
    }

    function test_ownerRotation_voidsSessionKeysAndOldOwner() public {
        address newOwner = vm.addr(NEW_OWNER_KEY);
        _ownerOp(
            account,
            _execute(
                address(account),
                0,
                abi.encodeCall(account.transferOwnership, (_ethSigner(newOwner)))
            )
        );
        vm.assertEq(account.owner(), newOwner, "owner rotated");

        _expectSignatureError(sessionKey);
        _expectSignatureError(secondSessionKey);
        _expectSignatureError(ownerKey);

        _handleOk(_opBy(account, NEW_OWNER_KEY, _mintCall(address(account))));
        vm.assertEq(_balance(account), 3, "new owner minted");
        // The old owner EOA lost its admin rights as well.
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(SessionKeyAccount.NotOwnerOrSelf.selector, owner));
        account.revokeAllSessionKeys();
    }

    function test_ownerRotation_backAndForthDoesNotReviveKeys() public {
        address newOwner = vm.addr(NEW_OWNER_KEY);
        _ownerOp(
            account,
            _execute(
                address(account),
                0,
                abi.encodeCall(account.transferOwnership, (_ethSigner(newOwner)))
            )
        );
        _handleOk(
            _opBy(
                account,
                NEW_OWNER_KEY,
                _execute(
                    address(account),
                    0,
                    abi.encodeCall(account.transferOwnership, (_ethSigner(owner)))
                )
            )
        );
        vm.assertEq(account.owner(), owner, "owner is back");
        vm.assertEq(account.sessionEpoch(), 2, "two epochs later");
        _expectSignatureError(sessionKey);
        _expectSignatureError(secondSessionKey);
        _ownerOp(account, _mintCall(address(account)));
    }

    function test_ownerRotation_rejectsZeroSelfAndRawP256() public {
        (uint256 x, uint256 y) = vm.publicKeyP256(0xC0FFEE);
        Signer[4] memory refused = [
            _ethSigner(address(0)),
            _ethSigner(address(account)),
            Signer({kind: SignerKind.P256, key: abi.encodePacked(x, y)}),
            Signer({kind: SignerKind.WebAuthn, key: abi.encodePacked(x)})
        ];
        vm.startPrank(owner);
        for (uint256 i = 0; i < refused.length; i++) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    SessionKeyAccount.InvalidOwner.selector, refused[i].kind, refused[i].key
                )
            );
            account.transferOwnership(refused[i]);
        }
        vm.stopPrank();
        vm.assertEq(account.owner(), owner, "owner unchanged");
        vm.assertEq(account.sessionEpoch(), 0, "no new epoch");
    }

    function testFuzz_revoke_onlyTheRevokedKeyStops(uint256 count, uint256 index, uint256 seed)
        public
    {
        count = bound(count, 1, 4);
        index = bound(index, 0, count - 1);
        uint256[] memory keys = new uint256[](count);
        for (uint256 i = 0; i < count; i++) {
            keys[i] = _privateKey(uint256(keccak256(abi.encode(seed, i))));
            vm.assume(keys[i] != ownerKey && keys[i] != sessionKey && keys[i] != secondSessionKey);
            for (uint256 j = 0; j < i; j++) {
                vm.assume(keys[j] != keys[i]);
            }
            _registerByOp(account, vm.addr(keys[i]), NOW - 1, NOW + 1 days, _mintPermissions(5));
        }

        vm.prank(owner);
        account.revokeSessionKey(registrationOf[vm.addr(keys[index])]);

        for (uint256 i = 0; i < count; i++) {
            if (i == index) _expectSignatureError(keys[i]);
            else _sessionMint(account, keys[i]);
        }
        vm.assertEq(_balance(account), 2 + count - 1, "every other key minted");
    }

    function testFuzz_ownerRotation_voidsEveryOldSigner(uint256 newOwnerSeed, bool byOp) public {
        uint256 newOwnerKey = _privateKey(newOwnerSeed);
        vm.assume(
            newOwnerKey != ownerKey && newOwnerKey != sessionKey && newOwnerKey != secondSessionKey
        );
        address newOwner = vm.addr(newOwnerKey);
        if (byOp) {
            _ownerOp(
                account,
                _execute(
                    address(account),
                    0,
                    abi.encodeCall(account.transferOwnership, (_ethSigner(newOwner)))
                )
            );
        } else {
            vm.prank(owner);
            account.transferOwnership(_ethSigner(newOwner));
        }
        _expectSignatureError(sessionKey);
        _expectSignatureError(secondSessionKey);
        _expectSignatureError(ownerKey);
        _handleOk(_opBy(account, newOwnerKey, _mintCall(address(account))));
    }

    function testFuzz_revokeAll_voidsEveryKey(uint256 epochs) public {
        epochs = bound(epochs, 1, 5);
        for (uint256 i = 0; i < epochs; i++) {
            vm.prank(owner);
            account.revokeAllSessionKeys();
        }
        vm.assertEq(account.sessionEpoch(), epochs, "epoch count");
        _expectSignatureError(sessionKey);
        _expectSignatureError(secondSessionKey);
    }
}

/// @notice Rule 8: a key registered again gets a new registration id and starts from clean
/// permissions and counters, whether it was revoked, all keys were revoked, or the owner
/// changed; nothing signed under the old registration is valid under the new one.
contract SessionKeyReRegistrationTest is AccountTestBase {
    uint256 internal constant PRICE = 0.001 ether;
    uint256 internal constant NEW_OWNER_KEY = 0x0E11E2;

    enum Reset {
        Revoke,
        RevokeAll,
        OwnerRotation
    }

    SessionKeyAccount internal account;

    /// @dev Allowlist {A}: buy on `items`, with a value budget.
    function _permissionsA() internal view returns (SessionKeyAccount.SessionPermissions memory) {
        return _permissions(
            5,
            uint128(PRICE),
            uint128(5 * PRICE),
            _list(_allow(address(items), GameItems.buy.selector))
        );
    }

    /// @dev Allowlist {B}: mint on `otherItems`, no value.
    function _permissionsB() internal view returns (SessionKeyAccount.SessionPermissions memory) {
        return _permissions(5, 0, 0, _list(_allow(address(otherItems), GameItems.mint.selector)));
    }

    function _buyOp() internal view returns (PackedUserOperation memory) {
        return _opBy(account, sessionKey, _execute(address(items), PRICE, _buyData(1)));
    }

    function setUp() public override {
        super.setUp();
        account = _deployWithSession(_permissionsA());
    }

    /// @dev Uses `uses` calls of allowlist {A}, signs one more {A} op without sending it, resets
    /// by `reset`, registers {B} for the same key under a new id, and checks that nothing of
    /// {A} survived, the unsent op included.
    function _useResetReRegister(uint256 uses, Reset reset) internal {
        for (uint256 i = 0; i < uses; i++) {
            _handleOk(_buyOp());
        }
        bytes32 first = registrationOf[session];
        vm.assertEq(_callsUsed(account, session), uses, "calls used under A");
        vm.assertEq(_sessionOf(account, session).valueSpent, uses * PRICE, "value spent under A");
        PackedUserOperation memory unsent = _buyOp();

        uint256 adminKey = ownerKey;
        if (reset == Reset.Revoke) {
            _ownerOp(account, _revokeCallData(address(account), first));
        } else if (reset == Reset.RevokeAll) {
            _ownerOp(account, _revokeAllCallData(address(account)));
        } else {
            _ownerOp(
                account, _transferCallData(address(account), _ethSigner(vm.addr(NEW_OWNER_KEY)))
            );
            adminKey = NEW_OWNER_KEY;
        }
        vm.assertFalse(_isRegistered(account, session), "key void after reset");

        _handleOk(
            _opBy(
                account,
                adminKey,
                _registerCallData(address(account), session, NOW - 1, NOW + 1 days, _permissionsB())
            )
        );
        bytes32 second = registrationOf[session];
        vm.assertNotEq(second, first, "a new registration id");

        SessionKeyAccount.SessionKey memory state = account.getSessionKey(second);
        vm.assertTrue(state.registered, "registered again");
        vm.assertEq(state.keyId, session, "the same key");
        vm.assertEq(state.callsUsed, 0, "callsUsed starts at 0");
        vm.assertEq(state.valueSpent, 0, "valueSpent starts at 0");
        vm.assertEq(state.valuePerCallLimit, 0, "new per-call limit");
        vm.assertEq(state.valueBudget, 0, "new budget");
        vm.assertFalse(
            account.isCallAllowed(second, address(items), GameItems.buy.selector), "A is gone"
        );
        vm.assertTrue(
            account.isCallAllowed(second, address(otherItems), GameItems.mint.selector), "B is in"
        );
        // The old registration stays void, with its counters as they were.
        vm.assertFalse(account.getSessionKey(first).registered, "the old registration is void");
        vm.assertEq(account.getSessionKey(first).callsUsed, uses, "its counters kept");

        // The op signed under A before the reset is refused: its signature names A.
        _handleExpectRevert(unsent, _aa24());
        // A is refused by validation; B works.
        _handleExpectRevert(
            _opBy(account, sessionKey, _execute(address(items), 0, _buyData(0))),
            _aa23(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyCallNotAllowed.selector,
                    address(items),
                    GameItems.buy.selector
                )
            )
        );
        _handleOk(
            _opBy(
                account,
                sessionKey,
                _execute(address(otherItems), 0, _mintData(address(account), 1))
            )
        );
        vm.assertEq(_callsUsed(account, session), 1, "counting from zero");
        vm.assertEq(otherItems.balanceOf(address(account), ITEM_ID), 1, "B minted");
    }

    function test_reRegisteredKey_startsCleanAfterRevoke() public {
        _useResetReRegister(2, Reset.Revoke);
    }

    function test_reRegisteredKey_startsCleanAfterRevokeAll() public {
        _useResetReRegister(2, Reset.RevokeAll);
    }

    function test_reRegisteredKey_startsCleanAfterOwnerRotation() public {
        _useResetReRegister(2, Reset.OwnerRotation);
    }

    /// @dev An id is accepted once: registering it again, for the same key or another, is
    /// refused and merges nothing; the zero id is refused outright.
    function test_register_refusesAUsedOrZeroRegistrationId() public {
        bytes32 registration = registrationOf[session];
        address[2] memory keys = [session, secondSession];
        for (uint256 i = 0; i < keys.length; i++) {
            _handleExpectExecutionRevert(
                _opBy(
                    account,
                    ownerKey,
                    _registerCallData(
                        address(account),
                        registration,
                        _ethSigner(keys[i]),
                        NOW - 1,
                        NOW + 1 days,
                        _permissionsB()
                    )
                ),
                abi.encodeWithSelector(
                    SessionKeyAccount.RegistrationAlreadyUsed.selector, registration
                )
            );
        }
        // Permissions did not merge: B is still not allowed.
        vm.assertFalse(
            account.isCallAllowed(registration, address(otherItems), GameItems.mint.selector),
            "no merge"
        );
        vm.assertEq(account.getSessionKey(registration).keyId, session, "same key as before");

        _handleExpectExecutionRevert(
            _opBy(
                account,
                ownerKey,
                _registerCallData(
                    address(account),
                    bytes32(0),
                    _ethSigner(secondSession),
                    NOW - 1,
                    NOW + 1 days,
                    _permissionsB()
                )
            ),
            abi.encodeWithSelector(SessionKeyAccount.RegistrationAlreadyUsed.selector, bytes32(0))
        );
    }

    /// @dev One key may hold two registrations at once; each has its own permissions and
    /// counters, and revoking one leaves the other.
    function test_register_sameKeyUnderTwoRegistrations() public {
        bytes32 first = registrationOf[session];
        _handleOk(_buyOp());
        bytes32 second = _registerByOp(account, session, NOW - 1, NOW + 1 days, _permissionsB());

        PackedUserOperation memory mintB = _op(
            address(account), "", _execute(address(otherItems), 0, _mintData(address(account), 1))
        );
        mintB.nonce = entryPoint.getNonce(address(account), _lane(session, 0));
        _handleOk(_signSession(mintB, sessionKey, second, _opDeadline()));
        vm.assertEq(account.getSessionKey(first).callsUsed, 1, "A counted one");
        vm.assertEq(account.getSessionKey(second).callsUsed, 1, "B counted one");

        // B's calls are not A's: under A, the mint on otherItems is refused.
        PackedUserOperation memory mintUnderA = _op(
            address(account), "", _execute(address(otherItems), 0, _mintData(address(account), 1))
        );
        mintUnderA.nonce = entryPoint.getNonce(address(account), _lane(session, 0));
        _handleExpectRevert(
            _signSession(mintUnderA, sessionKey, first, _opDeadline()),
            _aa23(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyCallNotAllowed.selector,
                    address(otherItems),
                    GameItems.mint.selector
                )
            )
        );

        _ownerOp(account, _revokeCallData(address(account), first));
        vm.assertFalse(account.getSessionKey(first).registered, "A revoked");
        vm.assertTrue(account.getSessionKey(second).registered, "B still active");
        mintB.nonce = entryPoint.getNonce(address(account), _lane(session, 0));
        _handleOk(_signSession(mintB, sessionKey, second, _opDeadline()));
    }

    function test_register_refusesOwnerZeroAccountOrMalformedKey() public {
        (uint256 x, uint256 y) = vm.publicKeyP256(0xC0FFEE);
        Signer[6] memory keys = [
            _ethSigner(owner),
            _ethSigner(address(0)),
            _ethSigner(address(account)),
            Signer({kind: SignerKind.P256, key: abi.encodePacked(x, y + 1)}),
            Signer({kind: SignerKind.WebAuthn, key: abi.encodePacked(x, y, x)}),
            Signer({kind: SignerKind.Secp256k1, key: abi.encodePacked(stranger, uint8(1))})
        ];
        for (uint256 i = 0; i < keys.length; i++) {
            _handleExpectExecutionRevert(
                _opBy(
                    account,
                    ownerKey,
                    _registerCallData(
                        address(account),
                        _newRegistration(stranger),
                        keys[i],
                        NOW - 1,
                        NOW + 1 days,
                        _permissionsB()
                    )
                ),
                abi.encodeWithSelector(
                    SessionKeyAccount.InvalidSessionKey.selector, keys[i].kind, keys[i].key
                )
            );
        }
    }

    function testFuzz_reRegisteredKey_startsClean(uint256 uses, uint8 reset) public {
        _useResetReRegister(bound(uses, 0, 5), Reset(bound(reset, 0, 2)));
    }
}
