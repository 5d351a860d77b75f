// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {GameItems} from "../src/GameItems.sol";
import {SessionKeyAccount} from "../src/SessionKeyAccount.sol";
import {AccountTestBase} from "./utils/AccountTestBase.sol";
import {BaseAccount} from "@account-abstraction/contracts/core/BaseAccount.sol";
import {
    PackedUserOperation
} from "@account-abstraction/contracts/interfaces/PackedUserOperation.sol";

/// @notice Rule 1: a session key works only inside its validity window, which the EntryPoint
/// enforces from the validationData the account returns. EntryPoint v0.8 refuses an op when
/// `block.timestamp <= validAfter || block.timestamp > validUntil`, so the usable window is
/// (validAfter, validUntil].
contract SessionKeyWindowTest is AccountTestBase {
    uint48 internal constant AFTER = NOW + 100;
    uint48 internal constant UNTIL = NOW + 1000;

    SessionKeyAccount internal account;

    function setUp() public override {
        super.setUp();
        account = _deployWithKey(session, AFTER, UNTIL, _mintPermissions(10));
    }

    function test_sessionKey_mintsWithinWindow() public {
        vm.warp(NOW + 500);
        _sessionMint(account, sessionKey);
        vm.assertEq(_balance(account), 1, "item minted");
        vm.assertEq(_callsUsed(account, session), 1, "one call used");
    }

    function test_sessionKey_refusedBeforeWindow() public {
        vm.warp(NOW + 50);
        _handleExpectRevert(_opBy(account, sessionKey, _mintCall(address(account))), _aa22());
        vm.assertEq(_balance(account), 0, "nothing minted");
    }

    function test_sessionKey_refusedAfterWindow() public {
        vm.warp(UNTIL + 1);
        _handleExpectRevert(_opBy(account, sessionKey, _mintCall(address(account))), _aa22());
        vm.assertEq(_callsUsed(account, session), 0, "no call counted");
    }

    /// @dev validAfter itself is refused (EntryPoint v0.8: `timestamp <= validAfter`);
    /// validUntil itself is accepted.
    function test_window_boundariesAreExclusiveAfterInclusiveUntil() public {
        vm.warp(AFTER);
        _handleExpectRevert(_opBy(account, sessionKey, _mintCall(address(account))), _aa22());

        vm.warp(AFTER + 1);
        _sessionMint(account, sessionKey);

        vm.warp(UNTIL);
        _sessionMint(account, sessionKey);

        vm.warp(UNTIL + 1);
        _handleExpectRevert(_opBy(account, sessionKey, _mintCall(address(account))), _aa22());
        vm.assertEq(_balance(account), 2, "two items minted inside the window");
    }

    function test_register_rejectsEmptyWindow() public {
        // Through an owner op: the registration reverts in execution.
        _handleExpectExecutionRevert(
            _opBy(
                account,
                ownerKey,
                _registerCallData(
                    address(account), secondSession, UNTIL, UNTIL, _mintPermissions(1)
                )
            ),
            abi.encodeWithSelector(SessionKeyAccount.InvalidSessionWindow.selector, UNTIL, UNTIL)
        );
        // Directly from the owner EOA, with validUntil before validAfter.
        SessionKeyAccount.SessionPermissions memory permissions = _mintPermissions(1);
        bytes32 registration = _newRegistration(secondSession);
        vm.prank(owner);
        vm.expectRevert(
            abi.encodeWithSelector(SessionKeyAccount.InvalidSessionWindow.selector, UNTIL, AFTER)
        );
        account.registerSessionKey(
            registration, _ethSigner(secondSession), UNTIL, AFTER, permissions
        );
        vm.assertFalse(_sessionOf(account, secondSession).registered, "not registered");
    }

    function testFuzz_window_acceptedInside(uint256 validAfter, uint256 length, uint256 at) public {
        validAfter = bound(validAfter, 0, type(uint40).max);
        length = bound(length, 1, type(uint32).max);
        uint256 validUntil = validAfter + length;
        at = bound(at, validAfter + 1, validUntil);

        _registerByOp(
            account, secondSession, uint48(validAfter), uint48(validUntil), _mintPermissions(1)
        );
        vm.warp(at);
        _sessionMint(account, secondSessionKey);
        vm.assertEq(_balance(account), 1, "minted inside the window");
    }

    function testFuzz_window_refusedOutside(
        uint256 validAfter,
        uint256 length,
        uint256 at,
        bool early
    ) public {
        validAfter = bound(validAfter, 0, type(uint40).max);
        length = bound(length, 1, type(uint32).max);
        uint256 validUntil = validAfter + length;
        at = early ? bound(at, 0, validAfter) : bound(at, validUntil + 1, type(uint48).max);

        _registerByOp(
            account, secondSession, uint48(validAfter), uint48(validUntil), _mintPermissions(1)
        );
        vm.warp(at);
        _handleExpectRevert(_opBy(account, secondSessionKey, _mintCall(address(account))), _aa22());
    }

    function testFuzz_register_rejectsEmptyWindow(uint48 validAfter, uint48 validUntil) public {
        validUntil = uint48(bound(validUntil, 0, validAfter));
        _handleExpectExecutionRevert(
            _opBy(
                account,
                ownerKey,
                _registerCallData(
                    address(account), secondSession, validAfter, validUntil, _mintPermissions(1)
                )
            ),
            abi.encodeWithSelector(
                SessionKeyAccount.InvalidSessionWindow.selector, validAfter, validUntil
            )
        );
        vm.assertFalse(_sessionOf(account, secondSession).registered, "not registered");
    }
}

/// @notice Rule 2: a session key makes at most `callLimit` calls over its life; every call of a
/// batch counts.
contract SessionKeyCallLimitTest is AccountTestBase {
    function test_callLimit_exactlyLimitCallsSucceed() public {
        SessionKeyAccount account = _deployWithSession(_mintPermissions(3));
        for (uint256 i = 0; i < 3; i++) {
            _sessionMint(account, sessionKey);
        }
        vm.assertEq(_callsUsed(account, session), 3, "three calls used");

        _handleExpectRevert(
            _opBy(account, sessionKey, _mintCall(address(account))),
            _aa23(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyCallLimitReached.selector, uint256(1), uint32(0)
                )
            )
        );
        vm.assertEq(_balance(account), 3, "exactly three items minted");
    }

    function test_callLimit_batchCountsEveryCall() public {
        SessionKeyAccount account = _deployWithSession(_mintPermissions(5));
        _handleOk(_opBy(account, sessionKey, _executeBatch(_mintBatch(address(account), 3))));
        vm.assertEq(_callsUsed(account, session), 3, "a batch of three counts three");

        _handleExpectRevert(
            _opBy(account, sessionKey, _executeBatch(_mintBatch(address(account), 3))),
            _aa23(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyCallLimitReached.selector, uint256(3), uint32(2)
                )
            )
        );

        _handleOk(_opBy(account, sessionKey, _executeBatch(_mintBatch(address(account), 2))));
        vm.assertEq(_callsUsed(account, session), 5, "limit reached exactly");
        vm.assertEq(_balance(account), 5, "five items minted");
    }

    /// @dev Limits are spent during validation, so a call whose execution reverts still counts,
    /// and so does its value, although the value never left the account.
    function test_callLimit_countsCallsWhoseExecutionReverts() public {
        uint256 price = items.PRICE();
        SessionKeyAccount account = _deployWithSession(
            _permissions(
                2,
                uint128(2 * price),
                uint128(2 * price),
                _list(_allow(address(items), GameItems.buy.selector))
            )
        );
        uint256 balanceBefore = address(account).balance;
        // Pays twice the price for one item: GameItems reverts with WrongPayment.
        _handleExpectExecutionRevert(
            _opBy(account, sessionKey, _execute(address(items), 2 * price, _buyData(1))),
            abi.encodeWithSelector(GameItems.WrongPayment.selector, price, 2 * price)
        );
        SessionKeyAccount.SessionKey memory state = _sessionOf(account, session);
        vm.assertEq(state.callsUsed, 1, "the reverted call counts");
        vm.assertEq(state.valueSpent, 2 * price, "its value counts too");
        vm.assertEq(address(items).balance, 0, "although nothing was paid");
        vm.assertLt(balanceBefore - address(account).balance, price, "only gas left the account");
    }

    function testFuzz_callLimit_batchesConsumeTheLimit(uint256 limit, uint256 seed) public {
        limit = bound(limit, 1, 8);
        SessionKeyAccount account = _deployWithSession(_mintPermissions(uint32(limit)));

        uint256 used = 0;
        for (uint256 round = 0;; round++) {
            uint256 size = bound(uint256(keccak256(abi.encode(seed, round))), 1, 4);
            PackedUserOperation memory op = size == 1
                ? _opBy(account, sessionKey, _mintCall(address(account)))
                : _opBy(account, sessionKey, _executeBatch(_mintBatch(address(account), size)));
            if (used + size > limit) {
                _handleExpectRevert(
                    op,
                    _aa23(
                        abi.encodeWithSelector(
                            SessionKeyAccount.SessionKeyCallLimitReached.selector,
                            size,
                            uint32(limit - used)
                        )
                    )
                );
                break;
            }
            _handleOk(op);
            used += size;
            vm.assertEq(_callsUsed(account, session), used, "calls counted per batch entry");
        }
        vm.assertEq(_balance(account), used, "one item per counted call");
    }
}

/// @notice Rule 3: a session key may only call allowlisted (target, selector) pairs, or every
/// selector of an `anySelector` target. The entry (target, 0x00000000) allows an empty call
/// only, never calldata that starts with four zero bytes.
contract SessionKeyAllowlistTest is AccountTestBase {
    function test_allowlist_allowedSelectorPasses() public {
        SessionKeyAccount account = _deployWithSession(_mintPermissions(5));
        vm.assertTrue(
            account.isCallAllowed(registrationOf[session], address(items), GameItems.mint.selector),
            "mint allowed"
        );
        _sessionMint(account, sessionKey);
        vm.assertEq(_balance(account), 1, "minted");
    }

    function test_allowlist_wrongSelectorOnAllowedTargetRefused() public {
        SessionKeyAccount account = _deployWithSession(_mintPermissions(5));
        _sessionMint(account, sessionKey);
        _handleExpectRevert(
            _opBy(
                account,
                sessionKey,
                _execute(address(items), 0, abi.encodeCall(GameItems.burn, (ITEM_ID, 1)))
            ),
            _aa23(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyCallNotAllowed.selector,
                    address(items),
                    GameItems.burn.selector
                )
            )
        );
        vm.assertEq(_balance(account), 1, "item not burnt");
    }

    function test_allowlist_wrongTargetRefused() public {
        SessionKeyAccount account = _deployWithSession(_mintPermissions(5));
        _handleExpectRevert(
            _opBy(
                account,
                sessionKey,
                _execute(address(otherItems), 0, _mintData(address(account), 1))
            ),
            _aa23(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyCallNotAllowed.selector,
                    address(otherItems),
                    GameItems.mint.selector
                )
            )
        );
        vm.assertFalse(
            account.isCallAllowed(
                registrationOf[session], address(otherItems), GameItems.mint.selector
            ),
            "other target not allowed"
        );
    }

    function test_allowlist_anySelectorAllowsEveryFunctionOfThatTargetOnly() public {
        SessionKeyAccount account =
            _deployWithSession(_permissions(10, 0, 0, _list(_allowAny(address(items)))));

        _sessionMint(account, sessionKey);
        _sessionMint(account, sessionKey);
        _handleOk(
            _opBy(
                account,
                sessionKey,
                _execute(address(items), 0, abi.encodeCall(GameItems.burn, (ITEM_ID, 1)))
            )
        );
        _handleOk(
            _opBy(
                account,
                sessionKey,
                _execute(
                    address(items), 0, abi.encodeCall(items.setApprovalForAll, (stranger, true))
                )
            )
        );
        vm.assertEq(_balance(account), 1, "two minted, one burnt");
        vm.assertTrue(items.isApprovedForAll(address(account), stranger), "approval set");

        _handleExpectRevert(
            _opBy(
                account,
                sessionKey,
                _execute(address(otherItems), 0, _mintData(address(account), 1))
            ),
            _aa23(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyCallNotAllowed.selector,
                    address(otherItems),
                    GameItems.mint.selector
                )
            )
        );
    }

    /// @dev Call data of 1 to 3 bytes has no selector; it is refused before the allowlist.
    function test_allowlist_malformedCallDataRefused() public {
        SessionKeyAccount account =
            _deployWithSession(_permissions(10, 0, 0, _list(_allowAny(address(items)))));
        _handleExpectRevert(
            _opBy(account, sessionKey, _execute(address(items), 0, hex"40c10f")),
            _aa23(abi.encodeWithSelector(SessionKeyAccount.MalformedCallData.selector, uint256(3)))
        );
    }

    /// @dev The entry (target, 0x00000000) allows an empty call to the target and nothing
    /// else: calldata that merely starts with four zero bytes is refused.
    function test_allowlist_zeroSelectorAllowsOnlyAnEmptyCall() public {
        SessionKeyAccount account = _deployWithSession(
            _permissions(10, 1 ether, 1 ether, _list(_allow(recipient, bytes4(0))))
        );
        bytes32 registration = registrationOf[session];
        vm.assertTrue(account.isCallAllowed(registration, recipient, bytes4(0)), "empty call");

        _handleOk(_opBy(account, sessionKey, _execute(recipient, 1 gwei, "")));
        vm.assertEq(recipient.balance, 1 gwei, "plain transfer made");

        bytes memory zeroPrefixed = abi.encodePacked(bytes4(0), uint256(1));
        _handleExpectRevert(
            _opBy(account, sessionKey, _execute(recipient, 1 gwei, zeroPrefixed)),
            _aa23(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyCallNotAllowed.selector, recipient, bytes4(0)
                )
            )
        );
        vm.assertEq(_callsUsed(account, session), 1, "the refused call was not counted");
    }

    function testFuzz_allowlist_zeroSelectorRefusesZeroPrefixedCallData(bytes memory tail) public {
        SessionKeyAccount account =
            _deployWithSession(_permissions(10, 0, 0, _list(_allow(address(items), bytes4(0)))));
        _handleExpectRevert(
            _opBy(
                account, sessionKey, _execute(address(items), 0, abi.encodePacked(bytes4(0), tail))
            ),
            _aa23(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyCallNotAllowed.selector, address(items), bytes4(0)
                )
            )
        );
    }

    function testFuzz_allowlist_refusesUnlistedCalls(
        address target,
        bytes4 selector,
        bytes memory args
    ) public {
        SessionKeyAccount account = _deployWithSession(_mintPermissions(5));
        vm.assume(
            target != address(account) && target != address(entryPoint) && target != address(0)
        );
        vm.assume(target != address(items) || selector != GameItems.mint.selector);

        _handleExpectRevert(
            _opBy(account, sessionKey, _execute(target, 0, abi.encodePacked(selector, args))),
            _aa23(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyCallNotAllowed.selector, target, selector
                )
            )
        );
        vm.assertEq(_callsUsed(account, session), 0, "no call counted");
    }

    function testFuzz_allowlist_anySelectorCoversOnlyItsTarget(address target, bytes4 selector)
        public
    {
        SessionKeyAccount account =
            _deployWithSession(_permissions(10, 0, 0, _list(_allowAny(address(items)))));
        vm.assume(
            target != address(account) && target != address(entryPoint) && target != address(0)
                && target != address(items)
        );

        // Every selector of `items` passes validation (execution may still revert in GameItems).
        vm.assertTrue(
            account.isCallAllowed(registrationOf[session], address(items), selector), "any selector"
        );
        _handle(_opBy(account, sessionKey, _execute(address(items), 0, abi.encodePacked(selector))));
        vm.assertEq(_callsUsed(account, session), 1, "the call passed validation");

        vm.assertFalse(
            account.isCallAllowed(registrationOf[session], target, selector), "other target"
        );
        _handleExpectRevert(
            _opBy(account, sessionKey, _execute(target, 0, abi.encodePacked(selector))),
            _aa23(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyCallNotAllowed.selector, target, selector
                )
            )
        );
    }
}

/// @notice Rule 4: native value is capped per call and in total.
contract SessionKeyValueTest is AccountTestBase {
    uint256 internal constant PRICE = 0.001 ether;
    uint128 internal constant PER_CALL = uint128(3 * PRICE);
    uint128 internal constant BUDGET = uint128(5 * PRICE);

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

    function _buyOp(SessionKeyAccount account, uint256 amount)
        internal
        view
        returns (PackedUserOperation memory)
    {
        return
            _opBy(account, sessionKey, _execute(address(items), amount * PRICE, _buyData(amount)));
    }

    function _payOp(SessionKeyAccount account, uint256 value)
        internal
        view
        returns (PackedUserOperation memory)
    {
        return _opBy(account, sessionKey, _execute(recipient, value, ""));
    }

    function test_value_buyWithinPerCallCap() public {
        SessionKeyAccount account = _deployWithSession(_valuePermissions(PER_CALL, BUDGET));
        _handleOk(_buyOp(account, 3));
        vm.assertEq(_balance(account), 3, "three items bought");
        vm.assertEq(_sessionOf(account, session).valueSpent, 3 * PRICE, "value counted");
        vm.assertEq(address(items).balance, 3 * PRICE, "GameItems paid");
    }

    function test_value_perCallCapRefused() public {
        SessionKeyAccount account = _deployWithSession(_valuePermissions(PER_CALL, BUDGET));
        _handleExpectRevert(
            _buyOp(account, 4),
            _aa23(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyValuePerCallExceeded.selector, 4 * PRICE, PER_CALL
                )
            )
        );
        vm.assertEq(_balance(account), 0, "nothing bought");
    }

    function test_value_budgetRefusedOnceSpent() public {
        SessionKeyAccount account = _deployWithSession(_valuePermissions(PER_CALL, BUDGET));
        _handleOk(_buyOp(account, 3));
        _handleExpectRevert(
            _buyOp(account, 3),
            _aa23(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyValueBudgetExceeded.selector,
                    3 * PRICE,
                    uint128(2 * PRICE)
                )
            )
        );
        _handleOk(_buyOp(account, 2));
        _handleExpectRevert(
            _payOp(account, 1),
            _aa23(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyValueBudgetExceeded.selector, uint256(1), uint128(0)
                )
            )
        );
        vm.assertEq(_balance(account), 5, "five items bought");
        vm.assertEq(_sessionOf(account, session).valueSpent, BUDGET, "budget spent");
    }

    function test_value_plainTransferToAllowlistedEoa() public {
        SessionKeyAccount account = _deployWithSession(_valuePermissions(PER_CALL, BUDGET));
        _handleOk(_payOp(account, PER_CALL));
        vm.assertEq(recipient.balance, PER_CALL, "recipient paid");
        vm.assertEq(_sessionOf(account, session).valueSpent, PER_CALL, "value counted");
    }

    function test_value_batchSumIsCheckedAgainstBudget() public {
        SessionKeyAccount account = _deployWithSession(_valuePermissions(PER_CALL, BUDGET));
        BaseAccount.Call[] memory calls = new BaseAccount.Call[](2);
        calls[0] = _call(recipient, PER_CALL, "");
        calls[1] = _call(recipient, PER_CALL, "");
        _handleExpectRevert(
            _opBy(account, sessionKey, _executeBatch(calls)),
            _aa23(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyValueBudgetExceeded.selector,
                    2 * uint256(PER_CALL),
                    BUDGET
                )
            )
        );
        calls[1] = _call(recipient, BUDGET - PER_CALL, "");
        _handleOk(_opBy(account, sessionKey, _executeBatch(calls)));
        vm.assertEq(recipient.balance, BUDGET, "whole budget paid out");
    }

    function testFuzz_value_perCallCap(uint256 value) public {
        value = bound(value, 0, 2 * uint256(PER_CALL));
        SessionKeyAccount account = _deployWithSession(_valuePermissions(PER_CALL, 10 * PER_CALL));
        if (value <= PER_CALL) {
            _handleOk(_payOp(account, value));
            vm.assertEq(recipient.balance, value, "recipient paid");
            vm.assertEq(_sessionOf(account, session).valueSpent, value, "value counted");
        } else {
            _handleExpectRevert(
                _payOp(account, value),
                _aa23(
                    abi.encodeWithSelector(
                        SessionKeyAccount.SessionKeyValuePerCallExceeded.selector, value, PER_CALL
                    )
                )
            );
            vm.assertEq(recipient.balance, 0, "nothing paid");
        }
    }

    function testFuzz_value_cumulativeBudget(uint256 budget, uint256 first, uint256 second) public {
        budget = bound(budget, 1, 1 ether);
        first = bound(first, 0, budget);
        second = bound(second, 0, budget);
        SessionKeyAccount account =
            _deployWithSession(_valuePermissions(uint128(budget), uint128(budget)));

        _handleOk(_payOp(account, first));
        if (first + second <= budget) {
            _handleOk(_payOp(account, second));
            vm.assertEq(recipient.balance, first + second, "both paid");
        } else {
            _handleExpectRevert(
                _payOp(account, second),
                _aa23(
                    abi.encodeWithSelector(
                        SessionKeyAccount.SessionKeyValueBudgetExceeded.selector,
                        second,
                        uint128(budget - first)
                    )
                )
            );
            vm.assertEq(recipient.balance, first, "only the first paid");
        }
        vm.assertLe(_sessionOf(account, session).valueSpent, budget, "never over budget");
    }

    function testFuzz_value_buyAroundTheCaps(uint256 amount) public {
        amount = bound(amount, 0, 8);
        SessionKeyAccount account = _deployWithSession(_valuePermissions(PER_CALL, BUDGET));
        if (amount * PRICE > PER_CALL) {
            _handleExpectRevert(
                _buyOp(account, amount),
                _aa23(
                    abi.encodeWithSelector(
                        SessionKeyAccount.SessionKeyValuePerCallExceeded.selector,
                        amount * PRICE,
                        PER_CALL
                    )
                )
            );
            vm.assertEq(_balance(account), 0, "nothing bought");
        } else {
            _handleOk(_buyOp(account, amount));
            vm.assertEq(_balance(account), amount, "bought");
        }
    }
}

/// @notice Rule 5: one bad call in a batch refuses the whole op and changes no state.
contract SessionKeyBatchTest is AccountTestBase {
    uint256 internal constant PRICE = 0.001 ether;

    enum Bad {
        WrongSelector,
        WrongTarget,
        OverValue,
        ForbiddenTarget
    }

    SessionKeyAccount internal account;

    function setUp() public override {
        super.setUp();
        account = _deployWithSession(
            _permissions(
                20,
                uint128(PRICE),
                uint128(100 * PRICE),
                _list(
                    _allow(address(items), GameItems.mint.selector),
                    _allow(address(items), GameItems.buy.selector)
                )
            )
        );
        // One call already used, so "unchanged" is not trivially zero.
        _sessionMint(account, sessionKey);
    }

    function _goodCall(uint256 i) internal view returns (BaseAccount.Call memory) {
        return i % 2 == 0
            ? _call(address(items), 0, _mintData(address(account), 1))
            : _call(address(items), PRICE, _buyData(1));
    }

    function _badCall(Bad kind)
        internal
        view
        returns (BaseAccount.Call memory call, bytes memory err)
    {
        if (kind == Bad.WrongSelector) {
            call = _call(address(items), 0, abi.encodeCall(GameItems.burn, (ITEM_ID, 1)));
            err = abi.encodeWithSelector(
                SessionKeyAccount.SessionKeyCallNotAllowed.selector,
                address(items),
                GameItems.burn.selector
            );
        } else if (kind == Bad.WrongTarget) {
            call = _call(address(otherItems), 0, _mintData(address(account), 1));
            err = abi.encodeWithSelector(
                SessionKeyAccount.SessionKeyCallNotAllowed.selector,
                address(otherItems),
                GameItems.mint.selector
            );
        } else if (kind == Bad.OverValue) {
            call = _call(address(items), 2 * PRICE, _buyData(2));
            err = abi.encodeWithSelector(
                SessionKeyAccount.SessionKeyValuePerCallExceeded.selector, 2 * PRICE, uint128(PRICE)
            );
        } else {
            call = _call(
                address(account),
                0,
                abi.encodeCall(account.transferOwnership, (_ethSigner(stranger)))
            );
            err = abi.encodeWithSelector(
                SessionKeyAccount.SessionKeyForbiddenTarget.selector, address(account)
            );
        }
    }

    function _assertUnchanged() internal view {
        SessionKeyAccount.SessionKey memory state = _sessionOf(account, session);
        vm.assertEq(state.callsUsed, 1, "callsUsed unchanged");
        vm.assertEq(state.valueSpent, 0, "valueSpent unchanged");
        vm.assertEq(_balance(account), 1, "items unchanged");
        vm.assertEq(otherItems.balanceOf(address(account), ITEM_ID), 0, "other items unchanged");
        vm.assertEq(account.owner(), owner, "owner unchanged");
    }

    function test_batch_oneBadCallRefusesWholeOp() public {
        BaseAccount.Call[] memory calls = new BaseAccount.Call[](3);
        calls[0] = _goodCall(0);
        calls[2] = _goodCall(1);
        bytes memory err;
        (calls[1], err) = _badCall(Bad.WrongSelector);
        _handleExpectRevert(_opBy(account, sessionKey, _executeBatch(calls)), _aa23(err));
        _assertUnchanged();

        // The same batch without the bad call goes through.
        calls[1] = _goodCall(2);
        _handleOk(_opBy(account, sessionKey, _executeBatch(calls)));
        vm.assertEq(_callsUsed(account, session), 4, "three more calls");
        vm.assertEq(_balance(account), 4, "three more items");
    }

    function testFuzz_batch_oneBadCallRefusesWholeOp(uint256 size, uint256 position, uint8 kind)
        public
    {
        size = bound(size, 1, 6);
        position = bound(position, 0, size - 1);
        Bad bad = Bad(bound(kind, 0, 3));

        BaseAccount.Call[] memory calls = new BaseAccount.Call[](size);
        bytes memory err;
        for (uint256 i = 0; i < size; i++) {
            if (i == position) (calls[i], err) = _badCall(bad);
            else calls[i] = _goodCall(i);
        }
        _handleExpectRevert(_opBy(account, sessionKey, _executeBatch(calls)), _aa23(err));
        _assertUnchanged();
    }
}
