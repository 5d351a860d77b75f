// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {GameItems} from "../src/GameItems.sol";
import {SessionKeyAccount} from "../src/SessionKeyAccount.sol";
import {MaskingToken} from "./utils/MaskingToken.sol";
import {PermissionTestBase} from "./utils/PermissionTestBase.sol";
import {BaseAccount} from "@account-abstraction/contracts/core/BaseAccount.sol";
import {
    PackedUserOperation
} from "@account-abstraction/contracts/interfaces/PackedUserOperation.sol";
import {IERC1155} from "@openzeppelin/contracts/token/ERC1155/IERC1155.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @notice Argument rules: conditions on the static parameters of an allowed call, checked
/// during validation. A refused argument surfaces as the EntryPoint's AA23 around
/// `SessionKeyArgumentNotAllowed(target, selector, param)`. The rules of one allowlist entry
/// must all hold; several entries for one (target, selector) are alternatives.
///
/// Most tests rule on `GameItems.mint(to, id, amount)`: parameter 0 is an address, 1 and 2
/// are uint256.
contract SessionKeyArgumentRulesTest is PermissionTestBase {
    bytes4 internal constant MINT = GameItems.mint.selector;
    uint8 internal constant TO = 0;
    uint8 internal constant ID = 1;
    uint8 internal constant AMOUNT = 2;

    SessionKeyAccount internal account;

    function setUp() public override {
        super.setUp();
        account = _deploy(0, "");
    }

    // ---------------------------------------------------------------------------------------
    // Helpers
    // ---------------------------------------------------------------------------------------

    /// @dev Registers `session` for `calls`, for a day.
    function _register(SessionKeyAccount.CallPermission[] memory calls) internal {
        _registerAsOwner(account, session, NOW - 1, NOW + 1 days, _permissions(100, 0, 0, calls));
    }

    /// @dev Registers `session` with one mint entry carrying `rules`.
    function _registerMint(SessionKeyAccount.ArgumentRule[] memory rules) internal {
        _register(_list(_ruled(address(items), MINT, rules)));
    }

    function _registerMintRule(SessionKeyAccount.ArgumentRule memory rule) internal {
        _registerMint(_rules(rule));
    }

    function _mintOp(address to, uint256 id, uint256 amount)
        internal
        view
        returns (PackedUserOperation memory)
    {
        return _opBy(
            account,
            sessionKey,
            _execute(address(items), 0, abi.encodeCall(GameItems.mint, (to, id, amount)))
        );
    }

    /// @dev A session-key mint that must pass validation and run.
    function _mintOk(address to, uint256 id, uint256 amount) internal {
        uint256 before = items.balanceOf(to, id);
        _handleOk(_mintOp(to, id, amount));
        vm.assertEq(items.balanceOf(to, id), before + amount, "minted");
    }

    /// @dev A session-key mint that the account must refuse on parameter `param`.
    function _mintRefused(address to, uint256 id, uint256 amount, uint8 param) internal {
        _handleExpectRevert(_mintOp(to, id, amount), _argumentRefused(address(items), MINT, param));
    }

    function _oneOfValues(uint256 seed, uint256 count)
        internal
        pure
        returns (bytes32[] memory values)
    {
        values = new bytes32[](count);
        for (uint256 i = 0; i < count; i++) {
            values[i] = keccak256(abi.encode(seed, i));
        }
    }

    // ---------------------------------------------------------------------------------------
    // Each condition
    // ---------------------------------------------------------------------------------------

    function test_rule_equal() public {
        _registerMintRule(_rule(ID, 32, SessionKeyAccount.Condition.Equal, ITEM_ID));
        _mintOk(address(account), ITEM_ID, 3);
        _mintRefused(address(account), ITEM_ID + 1, 3, ID);
        _mintRefused(address(account), 0, 3, ID);
    }

    function test_rule_notEqual() public {
        _registerMintRule(_rule(TO, 20, SessionKeyAccount.Condition.NotEqual, uint160(stranger)));
        _mintOk(address(account), ITEM_ID, 1);
        _mintOk(recipient, ITEM_ID, 1);
        _mintRefused(stranger, ITEM_ID, 1, TO);
    }

    function test_rule_lessOrEqual() public {
        _registerMintRule(_rule(AMOUNT, 32, SessionKeyAccount.Condition.LessOrEqual, 5));
        _mintOk(address(account), ITEM_ID, 5);
        _mintOk(address(account), ITEM_ID, 0);
        _mintRefused(address(account), ITEM_ID, 6, AMOUNT);
        _mintRefused(address(account), ITEM_ID, type(uint256).max, AMOUNT);
    }

    function test_rule_greaterOrEqual() public {
        _registerMintRule(_rule(AMOUNT, 32, SessionKeyAccount.Condition.GreaterOrEqual, 3));
        _mintOk(address(account), ITEM_ID, 3);
        _mintOk(address(account), ITEM_ID, 1000);
        _mintRefused(address(account), ITEM_ID, 2, AMOUNT);
        _mintRefused(address(account), ITEM_ID, 0, AMOUNT);
    }

    function test_rule_oneOf() public {
        bytes32[] memory ids = new bytes32[](3);
        ids[0] = bytes32(uint256(1));
        ids[1] = bytes32(ITEM_ID);
        ids[2] = bytes32(uint256(9));
        _registerMintRule(_ruleWith(ID, 32, SessionKeyAccount.Condition.OneOf, ids));
        _mintOk(address(account), 1, 1);
        _mintOk(address(account), ITEM_ID, 1);
        _mintOk(address(account), 9, 1);
        _mintRefused(address(account), 8, 1, ID);
        _mintRefused(address(account), 0, 1, ID);
    }

    function test_rule_oneOf_sixteenValuesAccepted() public {
        bytes32[] memory values = _oneOfValues(1, 16);
        _registerMintRule(_ruleWith(ID, 32, SessionKeyAccount.Condition.OneOf, values));
        _mintOk(address(account), uint256(values[15]), 1);
        _mintRefused(address(account), ITEM_ID, 1, ID);
    }

    function test_rule_isAccount() public {
        _registerMintRule(_isAccountRule(TO));
        _mintOk(address(account), ITEM_ID, 2);
        _mintRefused(stranger, ITEM_ID, 2, TO);
        _mintRefused(owner, ITEM_ID, 2, TO);
    }

    function testFuzz_rule_equal(uint256 value, uint256 word, bool same) public {
        if (same) word = value;
        _registerMintRule(_rule(ID, 32, SessionKeyAccount.Condition.Equal, value));
        if (word == value) _mintOk(address(account), word, 1);
        else _mintRefused(address(account), word, 1, ID);
    }

    function testFuzz_rule_notEqual(uint256 value, uint256 word, bool same) public {
        if (same) word = value;
        _registerMintRule(_rule(ID, 32, SessionKeyAccount.Condition.NotEqual, value));
        if (word != value) _mintOk(address(account), word, 1);
        else _mintRefused(address(account), word, 1, ID);
    }

    function testFuzz_rule_lessOrEqual(uint256 value, uint256 word) public {
        _registerMintRule(_rule(AMOUNT, 32, SessionKeyAccount.Condition.LessOrEqual, value));
        if (word <= value) _mintOk(address(account), ITEM_ID, word);
        else _mintRefused(address(account), ITEM_ID, word, AMOUNT);
    }

    function testFuzz_rule_greaterOrEqual(uint256 value, uint256 word) public {
        _registerMintRule(_rule(AMOUNT, 32, SessionKeyAccount.Condition.GreaterOrEqual, value));
        if (word >= value) _mintOk(address(account), ITEM_ID, word);
        else _mintRefused(address(account), ITEM_ID, word, AMOUNT);
    }

    function testFuzz_rule_oneOf(uint256 seed, uint256 count, uint256 word, uint256 pick) public {
        count = bound(count, 1, 16);
        bytes32[] memory values = _oneOfValues(seed, count);
        // Half the runs pick a listed value.
        if (pick % 2 == 0) word = uint256(values[bound(pick >> 1, 0, count - 1)]);
        bool listed = false;
        for (uint256 i = 0; i < count; i++) {
            if (uint256(values[i]) == word) listed = true;
        }
        _registerMintRule(_ruleWith(ID, 32, SessionKeyAccount.Condition.OneOf, values));
        if (listed) _mintOk(address(account), word, 1);
        else _mintRefused(address(account), word, 1, ID);
    }

    function testFuzz_rule_isAccount(address to, bool self) public {
        if (self) to = address(account);
        _registerMintRule(_isAccountRule(TO));
        if (to == address(account)) _mintOk(to, ITEM_ID, 1);
        else _mintRefused(to, ITEM_ID, 1, TO);
    }

    // ---------------------------------------------------------------------------------------
    // AND within an entry, OR across entries
    // ---------------------------------------------------------------------------------------

    function test_rules_ofOneEntryMustAllHold() public {
        _registerMint(
            _rules(
                _rule(ID, 32, SessionKeyAccount.Condition.Equal, ITEM_ID),
                _rule(AMOUNT, 32, SessionKeyAccount.Condition.LessOrEqual, 5)
            )
        );
        _mintOk(address(account), ITEM_ID, 5);
        // The first failing rule is reported.
        _mintRefused(address(account), ITEM_ID, 6, AMOUNT);
        _mintRefused(address(account), 8, 1, ID);
        _mintRefused(address(account), 8, 6, ID);
    }

    function test_rules_entriesForOneSelectorAreAlternatives() public {
        _register(
            _list(
                _ruled(
                    address(items),
                    MINT,
                    _rules(_rule(ID, 32, SessionKeyAccount.Condition.Equal, ITEM_ID))
                ),
                _ruled(
                    address(items),
                    MINT,
                    _rules(
                        _rule(ID, 32, SessionKeyAccount.Condition.Equal, 9),
                        _rule(AMOUNT, 32, SessionKeyAccount.Condition.LessOrEqual, 1)
                    )
                )
            )
        );
        _mintOk(address(account), ITEM_ID, 100);
        _mintOk(address(account), 9, 1);
        // Neither entry admits: the failing parameter of the last entry tried is reported.
        _mintRefused(address(account), 9, 2, AMOUNT);
        _mintRefused(address(account), 8, 1, ID);
        vm.assertTrue(
            account.isCallAllowed(registrationOf[session], address(items), MINT), "listed"
        );
    }

    /// @dev An entry without rules for the same selector admits any arguments.
    function test_rules_anEntryWithoutRulesAdmitsAnything() public {
        _register(
            _list(
                _ruled(address(items), MINT, _rules(_isAccountRule(TO))),
                _allow(address(items), MINT)
            )
        );
        _mintOk(stranger, 8, 1000);
    }

    function testFuzz_rules_andOr(uint256 id, uint256 amount) public {
        id = bound(id, 0, 12);
        amount = bound(amount, 0, 12);
        _register(
            _list(
                _ruled(
                    address(items),
                    MINT,
                    _rules(
                        _rule(ID, 32, SessionKeyAccount.Condition.LessOrEqual, 5),
                        _rule(AMOUNT, 32, SessionKeyAccount.Condition.GreaterOrEqual, 5)
                    )
                ),
                _ruled(
                    address(items),
                    MINT,
                    _rules(
                        _rule(ID, 32, SessionKeyAccount.Condition.GreaterOrEqual, 8),
                        _rule(AMOUNT, 32, SessionKeyAccount.Condition.LessOrEqual, 2)
                    )
                )
            )
        );
        bool first = id <= 5 && amount >= 5;
        bool second = id >= 8 && amount <= 2;
        if (first || second) {
            _mintOk(address(account), id, amount);
        } else {
            _mintRefused(address(account), id, amount, id >= 8 ? AMOUNT : ID);
        }
    }

    /// @dev Rules apply to the one (target, selector) they are registered for.
    function test_rules_doNotCoverOtherSelectorsOrTargets() public {
        _registerMintRule(_isAccountRule(TO));
        _handleExpectRevert(
            _opBy(
                account,
                sessionKey,
                _execute(address(otherItems), 0, _mintData(address(account), 1))
            ),
            _aa23(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyCallNotAllowed.selector, address(otherItems), MINT
                )
            )
        );
        _handleExpectRevert(
            _opBy(account, sessionKey, _execute(address(items), 0, _buyData(1))),
            _aa23(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyCallNotAllowed.selector,
                    address(items),
                    GameItems.buy.selector
                )
            )
        );
    }

    // ---------------------------------------------------------------------------------------
    // Calldata too short, non-canonical words
    // ---------------------------------------------------------------------------------------

    function test_rule_calldataTooShortForTheParamFails() public {
        _registerMintRule(_rule(AMOUNT, 32, SessionKeyAccount.Condition.LessOrEqual, 5));
        // mint(to, id) without its amount word: 68 bytes.
        bytes memory short = abi.encodePacked(MINT, uint256(uint160(address(account))), ITEM_ID);
        _handleExpectRevert(
            _opBy(account, sessionKey, _execute(address(items), 0, short)),
            _argumentRefused(address(items), MINT, AMOUNT)
        );
        // One byte short of the amount word.
        bytes memory almost = abi.encodePacked(short, bytes31(0));
        _handleExpectRevert(
            _opBy(account, sessionKey, _execute(address(items), 0, almost)),
            _argumentRefused(address(items), MINT, AMOUNT)
        );
    }

    function test_rule_onAParamPastTheCalldataFails() public {
        // mint has three parameters; a rule on a fourth can never hold for a canonical call.
        _registerMintRule(_rule(3, 32, SessionKeyAccount.Condition.LessOrEqual, type(uint256).max));
        _mintRefused(address(account), ITEM_ID, 1, 3);
    }

    function test_rule_width_bitsAboveTheWidthFail() public {
        // A uint8-like parameter: a word of 0x103 is not a canonical uint8, although it is >= 3
        // and a token that masks it to 8 bits would read 0x03.
        _registerMintRule(_rule(AMOUNT, 1, SessionKeyAccount.Condition.GreaterOrEqual, 3));
        _mintOk(address(account), ITEM_ID, 0xff);
        _mintOk(address(account), ITEM_ID, 3);
        _mintRefused(address(account), ITEM_ID, 0x103, AMOUNT);
        _mintRefused(address(account), ITEM_ID, 0x100, AMOUNT);
    }

    function test_rule_width_addressWithDirtyBitsFails() public {
        _registerMintRule(_rule(TO, 20, SessionKeyAccount.Condition.NotEqual, uint160(stranger)));
        bytes memory dirty = abi.encodePacked(
            MINT, (uint256(1) << 160) | uint160(address(account)), ITEM_ID, uint256(1)
        );
        _handleExpectRevert(
            _opBy(account, sessionKey, _execute(address(items), 0, dirty)),
            _argumentRefused(address(items), MINT, TO)
        );
    }

    /// @dev For any width below 32 bytes, a word with a bit above it fails even a rule that
    /// holds for every canonical nonzero word; a canonical word passes.
    function testFuzz_rule_width_bitsAboveTheWidthFail(uint256 width, uint256 high, uint256 low)
        public
    {
        uint8 w = _bound8(width, 1, 31);
        uint256 bits = 8 * uint256(w);
        high = bound(high, 1, type(uint256).max >> bits);
        low = bound(low, 1, (uint256(1) << bits) - 1);
        _registerMintRule(_rule(ID, w, SessionKeyAccount.Condition.NotEqual, 0));
        _mintRefused(address(account), (high << bits) | low, 1, ID);
        _mintOk(address(account), low, 1);
    }

    // ---------------------------------------------------------------------------------------
    // Registration refusals
    // ---------------------------------------------------------------------------------------

    /// @dev Registering an entry for `selector` on `items` whose rules are a valid rule, then
    /// `bad`, must fail with `InvalidArgumentRule(items, selector, 1)`.
    function _expectRuleRefused(SessionKeyAccount.ArgumentRule memory bad) internal {
        SessionKeyAccount.ArgumentRule[] memory rules =
            _rules(_rule(ID, 32, SessionKeyAccount.Condition.Equal, ITEM_ID), bad);
        _expectRegisterRefused(
            _permissions(10, 0, 0, _list(_ruled(address(items), MINT, rules))),
            abi.encodeWithSelector(
                SessionKeyAccount.InvalidArgumentRule.selector, address(items), MINT, uint256(1)
            )
        );
    }

    function _expectRegisterRefused(
        SessionKeyAccount.SessionPermissions memory permissions,
        bytes memory err
    ) internal {
        bytes32 registration = _newRegistration(secondSession);
        vm.prank(owner);
        vm.expectRevert(err);
        account.registerSessionKey(
            registration, _ethSigner(secondSession), NOW - 1, NOW + 1 days, permissions
        );
    }

    function test_register_refusesWidthZeroOrAbove32() public {
        _expectRuleRefused(_rule(ID, 0, SessionKeyAccount.Condition.Equal, 0));
        _expectRuleRefused(_rule(ID, 33, SessionKeyAccount.Condition.Equal, 0));
        _expectRuleRefused(_rule(ID, 255, SessionKeyAccount.Condition.LessOrEqual, 0));
    }

    function test_register_refusesWrongValueCount() public {
        SessionKeyAccount.Condition[4] memory single = [
            SessionKeyAccount.Condition.Equal,
            SessionKeyAccount.Condition.NotEqual,
            SessionKeyAccount.Condition.LessOrEqual,
            SessionKeyAccount.Condition.GreaterOrEqual
        ];
        for (uint256 i = 0; i < single.length; i++) {
            _expectRuleRefused(_ruleWith(ID, 32, single[i], new bytes32[](0)));
            _expectRuleRefused(_ruleWith(ID, 32, single[i], new bytes32[](2)));
        }
        _expectRuleRefused(
            _ruleWith(TO, 20, SessionKeyAccount.Condition.IsAccount, new bytes32[](1))
        );
    }

    function test_register_refusesIsAccountOfAnotherWidth() public {
        _expectRuleRefused(
            _ruleWith(TO, 32, SessionKeyAccount.Condition.IsAccount, new bytes32[](0))
        );
        _expectRuleRefused(
            _ruleWith(TO, 19, SessionKeyAccount.Condition.IsAccount, new bytes32[](0))
        );
    }

    function test_register_refusesOneOfWithNoneOrSeventeenValues() public {
        _expectRuleRefused(_ruleWith(ID, 32, SessionKeyAccount.Condition.OneOf, new bytes32[](0)));
        _expectRuleRefused(
            _ruleWith(ID, 32, SessionKeyAccount.Condition.OneOf, _oneOfValues(0, 17))
        );
        vm.assertEq(account.MAX_ONE_OF_VALUES(), 16, "at most sixteen values");
    }

    function test_register_refusesValueWiderThanWidth() public {
        _expectRuleRefused(_rule(AMOUNT, 1, SessionKeyAccount.Condition.LessOrEqual, 0x100));
        _expectRuleRefused(_rule(TO, 20, SessionKeyAccount.Condition.Equal, uint256(1) << 160));
        bytes32[] memory values = new bytes32[](2);
        values[0] = bytes32(uint256(1));
        values[1] = bytes32(uint256(1) << 16);
        _expectRuleRefused(_ruleWith(ID, 2, SessionKeyAccount.Condition.OneOf, values));
        // At the width's edge the value is accepted.
        bytes32 registration = _newRegistration(secondSession);
        SessionKeyAccount.ArgumentRule[] memory rules =
            _rules(_rule(AMOUNT, 1, SessionKeyAccount.Condition.LessOrEqual, 0xff));
        vm.prank(owner);
        account.registerSessionKey(
            registration,
            _ethSigner(secondSession),
            NOW - 1,
            NOW + 1 days,
            _permissions(10, 0, 0, _list(_ruled(address(items), MINT, rules)))
        );
    }

    function test_register_refusesRulesOnAnySelector() public {
        SessionKeyAccount.CallPermission memory entry = _allowAny(address(items));
        entry.rules = _rules(_isAccountRule(TO));
        _expectRegisterRefused(
            _permissions(10, 0, 0, _list(entry)),
            abi.encodeWithSelector(
                SessionKeyAccount.InvalidArgumentRule.selector,
                address(items),
                bytes4(0),
                uint256(0)
            )
        );
    }

    function test_register_refusesRulesOnTheEmptyCallSelector() public {
        _expectRegisterRefused(
            _permissions(
                10,
                1 ether,
                1 ether,
                _list(
                    _ruled(
                        recipient,
                        bytes4(0),
                        _rules(_rule(0, 32, SessionKeyAccount.Condition.Equal, 0))
                    )
                )
            ),
            abi.encodeWithSelector(
                SessionKeyAccount.InvalidArgumentRule.selector, recipient, bytes4(0), uint256(0)
            )
        );
    }

    /// @dev Through an owner op, the refusal reverts the registration in execution.
    function test_register_invalidRuleRevertsTheOwnerOp() public {
        SessionKeyAccount.ArgumentRule[] memory rules =
            _rules(_rule(ID, 0, SessionKeyAccount.Condition.Equal, 0));
        SessionKeyAccount.SessionPermissions memory permissions =
            _permissions(10, 0, 0, _list(_ruled(address(items), MINT, rules)));
        bytes memory callData =
            _registerCallData(address(account), secondSession, NOW - 1, NOW + 1 days, permissions);
        _handleExpectExecutionRevert(
            _opBy(account, ownerKey, callData),
            abi.encodeWithSelector(
                SessionKeyAccount.InvalidArgumentRule.selector, address(items), MINT, uint256(0)
            )
        );
        vm.assertFalse(_isRegistered(account, secondSession), "not registered");
    }

    // ---------------------------------------------------------------------------------------
    // The view
    // ---------------------------------------------------------------------------------------

    function test_getArgumentRules_reflectsTheRegistration() public {
        bytes32[] memory ids = new bytes32[](2);
        ids[0] = bytes32(uint256(1));
        ids[1] = bytes32(ITEM_ID);
        _register(
            _list(
                _ruled(
                    address(items),
                    MINT,
                    _rules(
                        _isAccountRule(TO),
                        _ruleWith(ID, 32, SessionKeyAccount.Condition.OneOf, ids)
                    )
                ),
                _ruled(
                    address(items),
                    MINT,
                    _rules(_rule(AMOUNT, 1, SessionKeyAccount.Condition.LessOrEqual, 9))
                )
            )
        );
        bytes32 registration = registrationOf[session];
        SessionKeyAccount.ArgumentRule[][] memory entries =
            _argumentRulesOf(account, registration, address(items), MINT);
        vm.assertEq(entries.length, 2, "two entries");
        vm.assertEq(entries[0].length, 2, "first entry: two rules");
        vm.assertEq(entries[0][0].param, TO, "param");
        vm.assertEq(entries[0][0].width, 20, "width");
        vm.assertEq(
            uint256(entries[0][0].condition), uint256(SessionKeyAccount.Condition.IsAccount), "cond"
        );
        vm.assertEq(entries[0][0].values.length, 0, "no values");
        vm.assertEq(entries[0][1].param, ID, "param");
        vm.assertEq(entries[0][1].width, 32, "width");
        vm.assertEq(
            uint256(entries[0][1].condition), uint256(SessionKeyAccount.Condition.OneOf), "c"
        );
        vm.assertEq(entries[0][1].values.length, 2, "two values");
        vm.assertEq(entries[0][1].values[1], bytes32(ITEM_ID), "value");
        vm.assertEq(entries[1].length, 1, "second entry: one rule");
        vm.assertEq(entries[1][0].param, AMOUNT, "param");
        vm.assertEq(entries[1][0].width, 1, "width");
        vm.assertEq(entries[1][0].values[0], bytes32(uint256(9)), "value");

        vm.assertEq(
            _argumentRulesOf(account, registration, address(items), GameItems.buy.selector).length,
            0,
            "nothing for another selector"
        );
        vm.assertEq(
            _argumentRulesOf(account, registration, address(otherItems), MINT).length,
            0,
            "nothing for another target"
        );
        vm.assertTrue(account.isCallAllowed(registration, address(items), MINT), "ruled is allowed");
        vm.assertFalse(
            account.isCallAllowed(registration, address(items), GameItems.buy.selector), "buy"
        );
    }
}

/// @notice "Only to the account" and the other argument rules hold whatever ABI encoding the
/// key chooses: the account reads every word the way the ABI decoder of the called contract
/// does, and a word that a masking decoder could read differently (dirty bits above the
/// parameter's width) is refused. In every case, what the token does is what the account
/// checked, or the op is refused.
contract SessionKeyArgumentEncodingTest is PermissionTestBase {
    bytes4 internal constant MINT = GameItems.mint.selector;
    bytes4 internal constant BATCH = IERC1155.safeBatchTransferFrom.selector;
    bytes4 internal constant TRANSFER = IERC20.transfer.selector;

    SessionKeyAccount internal account;
    MaskingToken internal masked;

    function setUp() public override {
        super.setUp();
        account = _deploy(0, "");
        masked = new MaskingToken();
        vm.label(address(masked), "MaskingToken");
    }

    function _register(SessionKeyAccount.CallPermission[] memory calls) internal {
        _registerAsOwner(account, session, NOW - 1, NOW + 1 days, _permissions(100, 0, 0, calls));
    }

    function _sessionOp(address target, bytes memory data)
        internal
        view
        returns (PackedUserOperation memory)
    {
        return _opBy(account, sessionKey, _execute(target, 0, data));
    }

    /// @dev The 32-byte word of `who` with `dirt` in its top 96 bits.
    function _dirty(address who, uint96 dirt) internal pure returns (uint256) {
        return (uint256(dirt) << 160) | uint160(who);
    }

    // ---------------------------------------------------------------------------------------
    // Dirty high bits
    // ---------------------------------------------------------------------------------------

    /// @dev The account's own address with dirty bits is refused, although a masking token
    /// would mint to the account: only the canonical word is "the account".
    function testFuzz_isAccount_dirtyHighBitsRefused(uint96 dirt, bool mintToken) public {
        dirt = uint96(bound(dirt, 1, type(uint96).max));
        address target = mintToken ? address(gold) : address(items);
        bytes4 selector = mintToken ? gold.mint.selector : MINT;
        _register(_list(_ruled(target, selector, _rules(_isAccountRule(0)))));
        bytes memory data = mintToken
            ? abi.encodePacked(selector, _dirty(address(account), dirt), uint256(5))
            : abi.encodePacked(selector, _dirty(address(account), dirt), ITEM_ID, uint256(5));
        _handleExpectRevert(_sessionOp(target, data), _argumentRefused(target, selector, 0));

        // The canonical encoding of the same call passes.
        data = mintToken
            ? abi.encodeCall(gold.mint, (address(account), 5))
            : _mintData(address(account), 5);
        _handleOk(_sessionOp(target, data));
    }

    /// @dev A token that masks address words reads `dirt ‖ stranger` as the stranger. A rule
    /// "never to the stranger" that compared whole words would be bypassed; the width check
    /// refuses the word instead.
    function testFuzz_notEqual_maskingTokenCannotBeFooled(uint96 dirt) public {
        dirt = uint96(bound(dirt, 1, type(uint96).max));
        masked.mint(address(account), 100);
        _register(
            _list(
                _ruled(
                    address(masked),
                    TRANSFER,
                    _rules(_rule(0, 20, SessionKeyAccount.Condition.NotEqual, uint160(stranger)))
                )
            )
        );
        bytes memory attack = abi.encodePacked(TRANSFER, _dirty(stranger, dirt), uint256(60));
        _handleExpectRevert(
            _sessionOp(address(masked), attack), _argumentRefused(address(masked), TRANSFER, 0)
        );
        vm.assertEq(masked.balanceOf(stranger), 0, "the stranger got nothing");

        // What the token would have done: the owner sends the very same calldata.
        _ownerOp(account, _execute(address(masked), 0, attack));
        vm.assertEq(masked.balanceOf(stranger), 60, "the masking token paid the stranger");

        // A clean transfer elsewhere passes the rule.
        _handleOk(_sessionOp(address(masked), abi.encodeCall(IERC20.transfer, (recipient, 40))));
        vm.assertEq(masked.balanceOf(recipient), 40, "recipient paid");
    }

    // ---------------------------------------------------------------------------------------
    // Non-canonical offsets and extra data
    // ---------------------------------------------------------------------------------------

    /// @dev `execute(target, value, data)` whose `data` offset skips a decoy bytes value laid
    /// out where a canonical encoding would put it.
    function _executeWithDecoy(address target, bytes memory decoy, bytes memory real)
        internal
        pure
        returns (bytes memory)
    {
        uint256 decoySize = _lengthPrefixed(decoy).length;
        return abi.encodePacked(
            BaseAccount.execute.selector,
            uint256(uint160(target)),
            uint256(0),
            uint256(0x60 + decoySize),
            _lengthPrefixed(decoy),
            _lengthPrefixed(real)
        );
    }

    /// @dev `data` as the tail of an ABI encoding holds it: its length, then its bytes padded
    /// to whole words.
    function _lengthPrefixed(bytes memory data) internal pure returns (bytes memory) {
        uint256 padding = (32 - (data.length % 32)) % 32;
        return abi.encodePacked(data.length, data, new bytes(padding));
    }

    function test_isAccount_executeOffsetPointingElsewhereChecksWhatRuns() public {
        _register(_list(_ruled(address(items), MINT, _rules(_isAccountRule(0)))));
        bytes memory toAccount = _mintData(address(account), 1);
        bytes memory toStranger = _mintData(stranger, 1);

        // The decoy is the allowed call; the call that would run mints to the stranger.
        PackedUserOperation memory op =
            _opBy(account, sessionKey, _executeWithDecoy(address(items), toAccount, toStranger));
        _handleExpectRevert(op, _argumentRefused(address(items), MINT, 0));

        // The other way round, the account checks the call that runs, and it runs.
        _handleOk(
            _opBy(account, sessionKey, _executeWithDecoy(address(items), toStranger, toAccount))
        );
        vm.assertEq(_balance(account), 1, "minted to the account");
        vm.assertEq(items.balanceOf(stranger, ITEM_ID), 0, "not to the stranger");
    }

    /// @dev Trailing data after the parameters is ignored by the token as by the rule: the head
    /// words the rule read are what the token decodes.
    function test_isAccount_innerCallWithExtraDataChecksTheHead() public {
        _register(_list(_ruled(address(items), MINT, _rules(_isAccountRule(0)))));
        bytes memory garbage = abi.encode(stranger, ITEM_ID, uint256(1000), stranger);
        _handleOk(
            _sessionOp(address(items), abi.encodePacked(_mintData(address(account), 2), garbage))
        );
        vm.assertEq(_balance(account), 2, "minted to the account");
        vm.assertEq(items.balanceOf(stranger, ITEM_ID), 0, "not to the stranger");

        _handleExpectRevert(
            _sessionOp(
                address(items), abi.encodePacked(_mintData(stranger, 2), abi.encode(account))
            ),
            _argumentRefused(address(items), MINT, 0)
        );
    }

    /// @dev `safeBatchTransferFrom(from, to, ids, amounts, data)` with a tail laid out as given.
    function _batchData(
        uint256 fromWord,
        uint256 toWord,
        uint256 idsAt,
        uint256 amountsAt,
        uint256 dataAt,
        bytes memory tail
    ) internal pure returns (bytes memory) {
        return abi.encodePacked(BATCH, abi.encode(fromWord, toWord, idsAt, amountsAt, dataAt), tail);
    }

    /// @dev The stranger holds items and lets the account move them; the key may pull them,
    /// only to the account, with a batch laid out in any way.
    function test_isAccount_batchWithOddOffsetsMovesWhatWasChecked() public {
        items.mint(stranger, 2, 100);
        items.mint(stranger, ITEM_ID, 100);
        vm.prank(stranger);
        items.setApprovalForAll(address(account), true);
        _register(_list(_ruled(address(items), BATCH, _rules(_isAccountRule(1)))));
        uint256 from = uint160(stranger);
        uint256 to = uint160(address(account));

        // Out of order: data, then amounts, then ids. Head = 5 words, so the tail starts at 0xa0.
        bytes memory tail = abi.encodePacked([uint256(0), 2, 3, 4, 2, 2, ITEM_ID]);
        _handleOk(_sessionOp(address(items), _batchData(from, to, 0x120, 0xc0, 0xa0, tail)));
        vm.assertEq(items.balanceOf(address(account), 2), 3, "id 2: 3");
        vm.assertEq(items.balanceOf(address(account), ITEM_ID), 4, "id 7: 4");

        // Overlapping: ids and amounts share the words [2, 7], so id 2 moves 7 and id 7 moves 3
        // (amounts start one word into ids: length 2 = ids[0], then 7, 3).
        tail = abi.encodePacked([uint256(2), 2, ITEM_ID, 3, 0]);
        _handleOk(_sessionOp(address(items), _batchData(from, to, 0xa0, 0xc0, 0x120, tail)));
        vm.assertEq(items.balanceOf(address(account), 2), 3 + 7, "id 2: +7");
        vm.assertEq(items.balanceOf(address(account), ITEM_ID), 4 + 3, "id 7: +3");

        // Whatever the layout, `to` is a head word: a dirty one is refused.
        tail = abi.encodePacked([uint256(1), ITEM_ID, 0]);
        _handleExpectRevert(
            _sessionOp(
                address(items),
                _batchData(from, _dirty(address(account), 1), 0xa0, 0xa0, 0xe0, tail)
            ),
            _argumentRefused(address(items), BATCH, 1)
        );
        _handleExpectRevert(
            _sessionOp(
                address(items),
                _batchData(from, uint160(address(recipient)), 0xa0, 0xa0, 0xe0, tail)
            ),
            _argumentRefused(address(items), BATCH, 1)
        );
        vm.assertEq(items.balanceOf(recipient, ITEM_ID), 0, "nothing elsewhere");
    }
}
