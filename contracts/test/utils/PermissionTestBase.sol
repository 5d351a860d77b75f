// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {GameGold} from "../../src/GameGold.sol";
import {SessionKeyAccount} from "../../src/SessionKeyAccount.sol";
import {AccountTestBase} from "./AccountTestBase.sol";
import {
    PackedUserOperation
} from "@account-abstraction/contracts/interfaces/PackedUserOperation.sol";

/// @notice Helpers for the argument-rule and spend-limit suites: building rules, allowlist
/// entries with rules and spend limits, ops with a chosen deadline, and the errors the account
/// reports through the EntryPoint.
abstract contract PermissionTestBase is AccountTestBase {
    /// @dev Where the game's gold goes: the address "to == treasury" rules name.
    address internal treasury = address(0x7EA5C2E);

    GameGold internal gold;

    function setUp() public virtual override {
        super.setUp();
        gold = new GameGold();
        vm.label(address(gold), "GameGold");
        vm.label(treasury, "treasury");
    }

    // ---------------------------------------------------------------------------------------
    // Argument rules
    // ---------------------------------------------------------------------------------------

    function _rule(uint8 param, uint8 width, SessionKeyAccount.Condition condition, uint256 value)
        internal
        pure
        returns (SessionKeyAccount.ArgumentRule memory rule)
    {
        bytes32[] memory values = new bytes32[](1);
        values[0] = bytes32(value);
        rule = _ruleWith(param, width, condition, values);
    }

    function _ruleWith(
        uint8 param,
        uint8 width,
        SessionKeyAccount.Condition condition,
        bytes32[] memory values
    ) internal pure returns (SessionKeyAccount.ArgumentRule memory) {
        return SessionKeyAccount.ArgumentRule({
                param: param, width: width, condition: condition, values: values
            });
    }

    /// @dev Parameter `param` is an address, and it must be the account itself.
    function _isAccountRule(uint8 param)
        internal
        pure
        returns (SessionKeyAccount.ArgumentRule memory)
    {
        return _ruleWith(param, 20, SessionKeyAccount.Condition.IsAccount, new bytes32[](0));
    }

    function _rules(SessionKeyAccount.ArgumentRule memory a)
        internal
        pure
        returns (SessionKeyAccount.ArgumentRule[] memory rules)
    {
        rules = new SessionKeyAccount.ArgumentRule[](1);
        rules[0] = a;
    }

    function _rules(
        SessionKeyAccount.ArgumentRule memory a,
        SessionKeyAccount.ArgumentRule memory b
    ) internal pure returns (SessionKeyAccount.ArgumentRule[] memory rules) {
        rules = new SessionKeyAccount.ArgumentRule[](2);
        rules[0] = a;
        rules[1] = b;
    }

    /// @dev An allowlist entry for `selector` on `target` that admits only calls where every
    /// one of `rules` holds.
    function _ruled(address target, bytes4 selector, SessionKeyAccount.ArgumentRule[] memory rules)
        internal
        pure
        returns (SessionKeyAccount.CallPermission memory)
    {
        return SessionKeyAccount.CallPermission({
            target: target, selector: selector, anySelector: false, rules: rules
        });
    }

    /// @dev `calls` with `entry` appended.
    function _and(
        SessionKeyAccount.CallPermission[] memory calls,
        SessionKeyAccount.CallPermission memory entry
    ) internal pure returns (SessionKeyAccount.CallPermission[] memory longer) {
        longer = new SessionKeyAccount.CallPermission[](calls.length + 1);
        for (uint256 i = 0; i < calls.length; i++) {
            longer[i] = calls[i];
        }
        longer[calls.length] = entry;
    }

    /// @dev One entry without rules for each of `selectors` on `target`.
    function _allowEach(address target, bytes4[] memory selectors)
        internal
        pure
        returns (SessionKeyAccount.CallPermission[] memory calls)
    {
        calls = new SessionKeyAccount.CallPermission[](selectors.length);
        for (uint256 i = 0; i < selectors.length; i++) {
            calls[i] = _allow(target, selectors[i]);
        }
    }

    /// @dev `account.getArgumentRules(...)`, decoded by hand: the legacy code generator cannot
    /// build a decoder for `ArgumentRule[][]` (stack too deep), so the returned ABI encoding is
    /// walked word by word, as an off-chain client does.
    function _argumentRulesOf(
        SessionKeyAccount account,
        bytes32 registration,
        address target,
        bytes4 selector
    ) internal view returns (SessionKeyAccount.ArgumentRule[][] memory entries) {
        (bool ok, bytes memory ret) = address(account)
            .staticcall(abi.encodeCall(account.getArgumentRules, (registration, target, selector)));
        require(ok, "getArgumentRules reverted");
        uint256 outer = _wordOf(ret, 0);
        entries = new SessionKeyAccount.ArgumentRule[][](_wordOf(ret, outer));
        uint256 entryHeads = outer + 32;
        for (uint256 i = 0; i < entries.length; i++) {
            uint256 entry = entryHeads + _wordOf(ret, entryHeads + 32 * i);
            entries[i] = new SessionKeyAccount.ArgumentRule[](_wordOf(ret, entry));
            for (uint256 j = 0; j < entries[i].length; j++) {
                entries[i][j] = _ruleAt(ret, entry + 32 + _wordOf(ret, entry + 32 + 32 * j));
            }
        }
    }

    /// @dev The ABI-encoded `ArgumentRule` at byte `at` of `data`.
    function _ruleAt(bytes memory data, uint256 at)
        internal
        pure
        returns (SessionKeyAccount.ArgumentRule memory rule)
    {
        rule.param = _bound8(_wordOf(data, at), 0, type(uint8).max);
        rule.width = _bound8(_wordOf(data, at + 32), 0, type(uint8).max);
        rule.condition = SessionKeyAccount.Condition(_wordOf(data, at + 64));
        uint256 valuesAt = at + _wordOf(data, at + 96);
        rule.values = new bytes32[](_wordOf(data, valuesAt));
        for (uint256 k = 0; k < rule.values.length; k++) {
            rule.values[k] = bytes32(_wordOf(data, valuesAt + 32 + 32 * k));
        }
    }

    /// @dev The word at byte `at` of `data`, which must hold it.
    function _wordOf(bytes memory data, uint256 at) internal pure returns (uint256 word) {
        require(data.length >= at + 32, "out of bounds");
        assembly ("memory-safe") {
            word := mload(add(add(data, 32), at))
        }
    }

    // ---------------------------------------------------------------------------------------
    // Spend limits
    // ---------------------------------------------------------------------------------------

    function _limit(
        SessionKeyAccount.Asset asset,
        address token,
        uint256 id,
        uint128 total,
        uint128 perPeriod,
        uint32 period
    ) internal pure returns (SessionKeyAccount.SpendLimit memory) {
        return SessionKeyAccount.SpendLimit({
            asset: asset, token: token, id: id, total: total, perPeriod: perPeriod, period: period
        });
    }

    function _limits(SessionKeyAccount.SpendLimit memory a)
        internal
        pure
        returns (SessionKeyAccount.SpendLimit[] memory limits)
    {
        limits = new SessionKeyAccount.SpendLimit[](1);
        limits[0] = a;
    }

    function _limits(SessionKeyAccount.SpendLimit memory a, SessionKeyAccount.SpendLimit memory b)
        internal
        pure
        returns (SessionKeyAccount.SpendLimit[] memory limits)
    {
        limits = new SessionKeyAccount.SpendLimit[](2);
        limits[0] = a;
        limits[1] = b;
    }

    /// @dev Permissions for `calls` and `limits`: plenty of calls, up to 1 ether of value per
    /// call and 10 ether in all, the default gas budget.
    function _permissionsWith(
        SessionKeyAccount.CallPermission[] memory calls,
        SessionKeyAccount.SpendLimit[] memory limits
    ) internal pure returns (SessionKeyAccount.SessionPermissions memory permissions) {
        permissions = _permissions(1000, 1 ether, 10 ether, calls);
        permissions.limits = limits;
    }

    /// @dev Registers the Ethereum key `key` on `account` by a direct call from the Ethereum
    /// owner, under a fresh registration id, which becomes the key's current one. (A direct
    /// call has no op gas limit: a registration with many rules costs more than one op's
    /// default call gas.)
    function _registerAsOwner(
        SessionKeyAccount account,
        address key,
        uint48 validAfter,
        uint48 validUntil,
        SessionKeyAccount.SessionPermissions memory permissions
    ) internal returns (bytes32 registration) {
        registration = _newRegistration(key);
        vm.prank(owner);
        account.registerSessionKey(
            registration, _ethSigner(key), validAfter, validUntil, permissions
        );
    }

    // ---------------------------------------------------------------------------------------
    // Ops
    // ---------------------------------------------------------------------------------------

    /// @dev An op by the Ethereum session key `privateKey`, under its current registration, in
    /// its first nonce lane, with the deadline `deadline` in its signature frame.
    function _opUntil(
        SessionKeyAccount account,
        uint256 privateKey,
        bytes memory callData,
        uint48 deadline
    ) internal view returns (PackedUserOperation memory op) {
        address keyId = vm.addr(privateKey);
        op = _op(address(account), "", callData);
        op.nonce = entryPoint.getNonce(address(account), _lane(keyId, 0));
        op = _signSession(op, privateKey, registrationOf[keyId], deadline);
    }

    /// @dev What handleOps reverts with when the account refuses an argument.
    function _argumentRefused(address target, bytes4 selector, uint8 param)
        internal
        pure
        returns (bytes memory)
    {
        return _aa23(
            abi.encodeWithSelector(
                SessionKeyAccount.SessionKeyArgumentNotAllowed.selector, target, selector, param
            )
        );
    }

    // ---------------------------------------------------------------------------------------
    // Numbers
    // ---------------------------------------------------------------------------------------

    /// @dev `bound`, for a value that must fit 128 bits.
    function _bound128(uint256 x, uint256 min, uint256 max) internal pure returns (uint128) {
        require(max <= type(uint128).max, "bound128: max too large");
        // casting is safe: the bounded value is at most `max`, which fits 128 bits
        // forge-lint: disable-next-line(unsafe-typecast)
        return uint128(bound(x, min, max));
    }

    /// @dev `bound`, for a value that must fit 8 bits.
    function _bound8(uint256 x, uint256 min, uint256 max) internal pure returns (uint8) {
        require(max <= type(uint8).max, "bound8: max too large");
        // casting is safe: the bounded value is at most `max`, which fits 8 bits
        // forge-lint: disable-next-line(unsafe-typecast)
        return uint8(bound(x, min, max));
    }

    /// @dev `bound`, for a value that must fit 48 bits.
    function _bound48(uint256 x, uint256 min, uint256 max) internal pure returns (uint48) {
        require(max <= type(uint48).max, "bound48: max too large");
        // casting is safe: the bounded value is at most `max`, which fits 48 bits
        // forge-lint: disable-next-line(unsafe-typecast)
        return uint48(bound(x, min, max));
    }
}
