// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {SessionKeyAccount} from "../src/SessionKeyAccount.sol";
import {AllowanceToken} from "./utils/AllowanceToken.sol";
import {MaskingToken} from "./utils/MaskingToken.sol";
import {PermissionTestBase} from "./utils/PermissionTestBase.sol";
import {TestNFT} from "./utils/TestNFT.sol";
import {BaseAccount} from "@account-abstraction/contracts/core/BaseAccount.sol";
import {
    PackedUserOperation
} from "@account-abstraction/contracts/interfaces/PackedUserOperation.sol";
import {IERC1155} from "@openzeppelin/contracts/token/ERC1155/IERC1155.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";

/// @notice Spend limits: what a session key may move or approve of the account's assets, in
/// all and per period, charged during validation. Every op goes through the EntryPoint's
/// `handleOps`; a refused spend surfaces as AA23 around the account's error, and a period's
/// calendar is enforced by the EntryPoint from the validAfter the account returns (AA22).
contract SessionKeySpendLimitsTest is PermissionTestBase {
    uint32 internal constant DAY = 1 days;
    /// @dev NOW (1_750_000_000) falls on day 20254, which starts at 1_749_945_600; the default
    /// op deadline (NOW + 1 hour) is on the same day.
    uint64 internal constant TODAY = 20254;
    uint48 internal constant TOMORROW = 1_750_032_000;
    uint48 internal constant DAY_AFTER = TOMORROW + 1 days;
    uint256 internal constant GOLD = 1 << 200;

    // ERC-721 selectors that have ERC-1155 or overloaded namesakes.
    bytes4 internal constant SAFE_721 = 0x42842e0e; // safeTransferFrom(address,address,uint256)
    // safeTransferFrom(address,address,uint256,bytes)
    bytes4 internal constant SAFE_721_DATA = 0xb88d4fde;
    bytes4 internal constant SET_APPROVAL_FOR_ALL = 0xa22cb465;

    SessionKeyAccount.Asset internal constant NONE = SessionKeyAccount.Asset.None;
    SessionKeyAccount.Asset internal constant NATIVE = SessionKeyAccount.Asset.Native;
    SessionKeyAccount.Asset internal constant ERC20 = SessionKeyAccount.Asset.ERC20;
    SessionKeyAccount.Asset internal constant ERC721 = SessionKeyAccount.Asset.ERC721;
    SessionKeyAccount.Asset internal constant ERC1155 = SessionKeyAccount.Asset.ERC1155;

    SessionKeyAccount internal account;
    AllowanceToken internal allowanceToken;
    TestNFT internal nft;
    MaskingToken internal masked;

    function setUp() public override {
        super.setUp();
        account = _deploy(0, "");
        allowanceToken = new AllowanceToken();
        nft = new TestNFT();
        masked = new MaskingToken();
        vm.label(address(allowanceToken), "AllowanceToken");
        vm.label(address(nft), "TestNFT");
        vm.label(address(masked), "MaskingToken");
        gold.mint(address(account), GOLD);
        allowanceToken.mint(address(account), GOLD);
        vm.assertEq(uint256(NOW) / DAY, TODAY, "today");
        vm.assertEq(uint256(TOMORROW), (uint256(TODAY) + 1) * DAY, "tomorrow");
        vm.assertEq(uint256(_opDeadline()) / DAY, TODAY, "the default deadline is today");
    }

    // ---------------------------------------------------------------------------------------
    // Helpers
    // ---------------------------------------------------------------------------------------

    function _selectors(bytes4 a, bytes4 b, bytes4 c, bytes4 d)
        internal
        pure
        returns (bytes4[] memory selectors)
    {
        selectors = new bytes4[](4);
        selectors[0] = a;
        selectors[1] = b;
        selectors[2] = c;
        selectors[3] = d;
    }

    function _goldCalls() internal view returns (SessionKeyAccount.CallPermission[] memory) {
        return _allowEach(
            address(gold),
            _selectors(
                IERC20.transfer.selector,
                IERC20.transferFrom.selector,
                IERC20.approve.selector,
                IERC20Permit.permit.selector
            )
        );
    }

    function _nftCalls() internal view returns (SessionKeyAccount.CallPermission[] memory) {
        return _and(
            _allowEach(
                address(nft),
                _selectors(
                    IERC721.transferFrom.selector, SAFE_721, SAFE_721_DATA, IERC721.approve.selector
                )
            ),
            _allow(address(nft), SET_APPROVAL_FOR_ALL)
        );
    }

    function _itemCalls() internal view returns (SessionKeyAccount.CallPermission[] memory) {
        return _list(
            _allow(address(items), IERC1155.safeTransferFrom.selector),
            _allow(address(items), IERC1155.safeBatchTransferFrom.selector)
        );
    }

    /// @dev Registers `session` for 60 days with `calls` and `limits`.
    function _register(
        SessionKeyAccount.CallPermission[] memory calls,
        SessionKeyAccount.SpendLimit[] memory limits
    ) internal returns (bytes32) {
        return
            _registerAsOwner(
                account, session, NOW - 1, NOW + 60 days, _permissionsWith(calls, limits)
            );
    }

    function _registerGold(uint128 total, uint128 perPeriod, uint32 period) internal {
        _register(_goldCalls(), _limits(_limit(ERC20, address(gold), 0, total, perPeriod, period)));
    }

    function _state(address token, uint256 id)
        internal
        view
        returns (SessionKeyAccount.SpendState memory)
    {
        return account.getSpendLimit(registrationOf[session], token, id);
    }

    function _spent(address token, uint256 id) internal view returns (uint256) {
        return _state(token, id).spent;
    }

    /// @dev A session-key op making one call, with the default deadline.
    function _sessionOp(address target, uint256 value, bytes memory data)
        internal
        view
        returns (PackedUserOperation memory)
    {
        return _opBy(account, sessionKey, _execute(target, value, data));
    }

    /// @dev As `_sessionOp`, with the deadline `deadline`.
    function _sessionOpUntil(address target, uint256 value, bytes memory data, uint48 deadline)
        internal
        view
        returns (PackedUserOperation memory)
    {
        return _opUntil(account, sessionKey, _execute(target, value, data), deadline);
    }

    function _goldTransfer(uint256 amount) internal view returns (bytes memory) {
        return abi.encodeCall(IERC20.transfer, (recipient, amount));
    }

    function _exceeded(address token, uint256 id, uint256 amount, uint256 left)
        internal
        pure
        returns (bytes memory)
    {
        return _aa23(
            abi.encodeWithSelector(
                SessionKeyAccount.SessionKeySpendLimitExceeded.selector, token, id, amount, left
            )
        );
    }

    function _periodExceeded(address token, uint256 id, uint256 amount, uint256 left)
        internal
        pure
        returns (bytes memory)
    {
        return _aa23(
            abi.encodeWithSelector(
                SessionKeyAccount.SessionKeyPeriodAllowanceExceeded.selector,
                token,
                id,
                amount,
                left
            )
        );
    }

    function _unbounded(address token, bytes4 selector) internal pure returns (bytes memory) {
        return _aa23(
            abi.encodeWithSelector(
                SessionKeyAccount.SessionKeySpendUnbounded.selector, token, selector
            )
        );
    }

    // ---------------------------------------------------------------------------------------
    // ERC-20
    // ---------------------------------------------------------------------------------------

    function test_erc20_transferCountedUpToTheTotal() public {
        _registerGold(100, 0, 0);
        PackedUserOperation memory op = _sessionOp(address(gold), 0, _goldTransfer(60));
        bytes32 userOpHash = entryPoint.getUserOpHash(op);
        vm.expectEmit(true, true, false, true, address(account));
        emit SessionKeyAccount.SpendLimitUsed(registrationOf[session], address(gold), 0, 60, 0, 0);
        _handleOk(op, userOpHash);
        vm.assertEq(_spent(address(gold), 0), 60, "60 spent");

        _handleExpectRevert(
            _sessionOp(address(gold), 0, _goldTransfer(41)), _exceeded(address(gold), 0, 41, 40)
        );
        _handleOk(_sessionOp(address(gold), 0, _goldTransfer(40)));
        _handleExpectRevert(
            _sessionOp(address(gold), 0, _goldTransfer(1)), _exceeded(address(gold), 0, 1, 0)
        );
        // Nothing is nothing.
        _handleOk(_sessionOp(address(gold), 0, _goldTransfer(0)));
        vm.assertEq(_spent(address(gold), 0), 100, "the whole limit spent");
        vm.assertEq(gold.balanceOf(recipient), 100, "exactly the limit moved");
    }

    function test_erc20_transferFromTheAccountCounted_fromOthersNot() public {
        _registerGold(100, 0, 0);
        // The account lets itself move its gold (an owner op: not the key's spending).
        _ownerOp(
            account,
            _execute(address(gold), 0, abi.encodeCall(IERC20.approve, (address(account), GOLD)))
        );
        gold.mint(stranger, 500);
        vm.prank(stranger);
        gold.approve(address(account), 500);

        _handleOk(
            _sessionOp(
                address(gold),
                0,
                abi.encodeCall(IERC20.transferFrom, (address(account), recipient, 70))
            )
        );
        vm.assertEq(_spent(address(gold), 0), 70, "from the account: counted");

        _handleOk(
            _sessionOp(
                address(gold), 0, abi.encodeCall(IERC20.transferFrom, (stranger, recipient, 500))
            )
        );
        vm.assertEq(_spent(address(gold), 0), 70, "from another holder: not counted");
        vm.assertEq(gold.balanceOf(recipient), 570, "both moved");

        _handleExpectRevert(
            _sessionOp(
                address(gold),
                0,
                abi.encodeCall(IERC20.transferFrom, (address(account), recipient, 31))
            ),
            _exceeded(address(gold), 0, 31, 30)
        );
    }

    /// @dev The approval is what is counted, so a spender can never pull more than the limit,
    /// however the key splits it between approvals and transfers.
    function test_erc20_approveCounted_theSpenderNeverGetsMoreThanTheLimit() public {
        _registerGold(100, 0, 0);
        _handleExpectRevert(
            _sessionOp(address(gold), 0, abi.encodeCall(IERC20.approve, (stranger, 101))),
            _exceeded(address(gold), 0, 101, 100)
        );
        _handleOk(_sessionOp(address(gold), 0, abi.encodeCall(IERC20.approve, (stranger, 70))));
        vm.assertEq(_spent(address(gold), 0), 70, "the approval is counted");

        vm.prank(stranger);
        vm.assertTrue(gold.transferFrom(address(account), stranger, 70), "pulled");
        _handleOk(_sessionOp(address(gold), 0, _goldTransfer(30)));

        _handleExpectRevert(
            _sessionOp(address(gold), 0, abi.encodeCall(IERC20.approve, (stranger, 1))),
            _exceeded(address(gold), 0, 1, 0)
        );
        vm.assertEq(gold.allowance(address(account), stranger), 0, "no allowance left");
        vm.assertEq(gold.balanceOf(stranger) + gold.balanceOf(recipient), 100, "the limit, no more");
    }

    function test_erc20_increaseAllowanceCounted() public {
        _register(
            _list(
                _allow(address(allowanceToken), AllowanceToken.increaseAllowance.selector),
                _allow(address(allowanceToken), IERC20.approve.selector)
            ),
            _limits(_limit(ERC20, address(allowanceToken), 0, 50, 0, 0))
        );
        bytes memory increase30 = abi.encodeCall(AllowanceToken.increaseAllowance, (stranger, 30));
        _handleOk(_sessionOp(address(allowanceToken), 0, increase30));
        vm.assertEq(_spent(address(allowanceToken), 0), 30, "counted");
        _handleExpectRevert(
            _sessionOp(
                address(allowanceToken),
                0,
                abi.encodeCall(AllowanceToken.increaseAllowance, (stranger, 21))
            ),
            _exceeded(address(allowanceToken), 0, 21, 20)
        );
        _handleOk(
            _sessionOp(
                address(allowanceToken),
                0,
                abi.encodeCall(AllowanceToken.increaseAllowance, (stranger, 20))
            )
        );
        vm.assertEq(allowanceToken.allowance(address(account), stranger), 50, "allowance 50");
        _handleExpectRevert(
            _sessionOp(address(allowanceToken), 0, increase30),
            _exceeded(address(allowanceToken), 0, 30, 0)
        );

        vm.prank(stranger);
        vm.assertTrue(allowanceToken.transferFrom(address(account), stranger, 50), "pulled");
        vm.assertEq(allowanceToken.balanceOf(stranger), 50, "the spender got the limit");
    }

    function _permitCall(address holder, address spender, uint256 value, uint256 privateKey)
        internal
        view
        returns (bytes memory)
    {
        uint256 deadline = NOW + 1 days;
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(
                    "Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"
                ),
                holder,
                spender,
                value,
                gold.nonces(holder),
                deadline
            )
        );
        bytes32 digest =
            keccak256(abi.encodePacked("\x19\x01", gold.DOMAIN_SEPARATOR(), structHash));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(privateKey, digest);
        return abi.encodeCall(IERC20Permit.permit, (holder, spender, value, deadline, v, r, s));
    }

    /// @dev A permit whose owner is the account is counted (validation cannot tell whether it
    /// will verify); a permit by someone else for the account is not.
    function test_erc20_permitForTheAccountCounted_permitByOthersNot() public {
        _registerGold(100, 0, 0);
        // The account cannot sign an ECDSA permit, so this one fails in execution: it is
        // counted all the same, during validation.
        vm.assertFalse(
            _handle(
                _sessionOp(
                    address(gold), 0, _permitCall(address(account), stranger, 60, strangerKey)
                )
            ),
            "the permit does not verify"
        );
        vm.assertEq(_spent(address(gold), 0), 60, "counted");
        _handleExpectRevert(
            _sessionOp(address(gold), 0, _permitCall(address(account), stranger, 41, strangerKey)),
            _exceeded(address(gold), 0, 41, 40)
        );

        _handleOk(
            _sessionOp(address(gold), 0, _permitCall(stranger, address(account), 500, strangerKey))
        );
        vm.assertEq(gold.allowance(stranger, address(account)), 500, "the stranger's permit ran");
        vm.assertEq(_spent(address(gold), 0), 60, "not counted");
    }

    function testFuzz_erc20_transfersAgainstTheLimit(uint256 total, uint256 first, uint256 second)
        public
    {
        uint128 limit = _bound128(total, 1, type(uint128).max);
        first = bound(first, 0, limit);
        second = bound(second, 0, 2 * uint256(limit));
        _registerGold(limit, 0, 0);
        _handleOk(_sessionOp(address(gold), 0, _goldTransfer(first)));
        uint256 left = limit - first;
        if (second <= left) {
            _handleOk(_sessionOp(address(gold), 0, _goldTransfer(second)));
            vm.assertEq(gold.balanceOf(recipient), first + second, "moved");
        } else {
            _handleExpectRevert(
                _sessionOp(address(gold), 0, _goldTransfer(second)),
                _exceeded(address(gold), 0, second, left)
            );
            vm.assertEq(gold.balanceOf(recipient), first, "only the first moved");
        }
        vm.assertLe(gold.balanceOf(recipient), limit, "never more than the limit");
    }

    /// @dev A transfer split into many small ones in one batch is summed: the first part that
    /// crosses the limit is refused, with what was left before it.
    function testFuzz_erc20_batchSplitIsSummed(uint256 total, uint256 parts, uint256 seed) public {
        uint128 limit = _bound128(total, 1, 1e24);
        parts = bound(parts, 1, 12);
        _registerGold(limit, 0, 0);
        BaseAccount.Call[] memory calls = new BaseAccount.Call[](parts);
        uint256 sum = 0;
        uint256 crossing = type(uint256).max;
        uint256 leftAtCrossing = 0;
        for (uint256 i = 0; i < parts; i++) {
            uint256 amount =
                bound(uint256(keccak256(abi.encode(seed, i))), 0, (2 * uint256(limit)) / parts + 1);
            calls[i] = _call(address(gold), 0, _goldTransfer(amount));
            if (crossing == type(uint256).max && sum + amount > limit) {
                crossing = i;
                leftAtCrossing = limit - sum;
            }
            sum += amount;
        }
        PackedUserOperation memory op = _opBy(account, sessionKey, _executeBatch(calls));
        if (sum <= limit) {
            _handleOk(op);
            vm.assertEq(_spent(address(gold), 0), sum, "the parts are summed");
            vm.assertEq(gold.balanceOf(recipient), sum, "all parts moved");
        } else {
            uint256 amount = abi.decode(_slice(calls[crossing].data, 36), (uint256));
            _handleExpectRevert(op, _exceeded(address(gold), 0, amount, leftAtCrossing));
            vm.assertEq(gold.balanceOf(recipient), 0, "nothing moved");
        }
    }

    function _slice(bytes memory data, uint256 from) internal pure returns (bytes memory out) {
        out = new bytes(data.length - from);
        for (uint256 i = 0; i < out.length; i++) {
            out[i] = data[from + i];
        }
    }

    /// @dev A token that masks address words would read `dirt ‖ account` as the account: a
    /// `transferFrom` whose `from` is that word moves the account's tokens. Unless refused, it
    /// would look like a transfer from someone else, which is not counted.
    function testFuzz_erc20_dirtyFromRefusedAsNotCanonical(uint96 dirt) public {
        dirt = uint96(bound(dirt, 1, type(uint96).max));
        masked.mint(address(account), 1000);
        _register(
            _list(
                _allow(address(masked), IERC20.transferFrom.selector),
                _allow(address(masked), IERC20.transfer.selector)
            ),
            _limits(_limit(ERC20, address(masked), 0, 100, 0, 0))
        );
        bytes memory attack = abi.encodePacked(
            IERC20.transferFrom.selector,
            (uint256(dirt) << 160) | uint160(address(account)),
            uint256(uint160(stranger)),
            uint256(500)
        );
        _handleExpectRevert(
            _sessionOp(address(masked), 0, attack),
            _aa23(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyArgumentNotCanonical.selector,
                    address(masked),
                    IERC20.transferFrom.selector,
                    uint256(0)
                )
            )
        );
        vm.assertEq(masked.balanceOf(stranger), 0, "nothing moved");
        // What the token does with that word: the owner sends the same call.
        _ownerOp(account, _execute(address(masked), 0, attack));
        vm.assertEq(masked.balanceOf(stranger), 500, "the account's tokens moved");
        // A plain transfer is still counted as usual.
        _handleExpectRevert(
            _sessionOp(address(masked), 0, abi.encodeCall(IERC20.transfer, (stranger, 101))),
            _exceeded(address(masked), 0, 101, 100)
        );
    }

    // ---------------------------------------------------------------------------------------
    // ERC-721
    // ---------------------------------------------------------------------------------------

    function _registerNft(uint128 total) internal {
        for (uint256 id = 1; id <= 4; id++) {
            nft.mint(address(account), id);
        }
        _register(_nftCalls(), _limits(_limit(ERC721, address(nft), 0, total, 0, 0)));
    }

    function test_erc721_eachTransferCountsOne() public {
        _registerNft(3);
        _handleOk(
            _sessionOp(
                address(nft),
                0,
                abi.encodeCall(IERC721.transferFrom, (address(account), recipient, 1))
            )
        );
        vm.assertEq(_spent(address(nft), 0), 1, "transferFrom: 1");
        _handleOk(
            _sessionOp(
                address(nft), 0, abi.encodeWithSelector(SAFE_721, address(account), recipient, 2)
            )
        );
        vm.assertEq(_spent(address(nft), 0), 2, "safeTransferFrom: 1");
        _handleOk(
            _sessionOp(
                address(nft),
                0,
                abi.encodeWithSelector(SAFE_721_DATA, address(account), recipient, 3, "")
            )
        );
        vm.assertEq(_spent(address(nft), 0), 3, "safeTransferFrom with data: 1");

        // Moving someone else's token is not the account's spending.
        nft.mint(stranger, 9);
        vm.prank(stranger);
        nft.approve(address(account), 9);
        _handleOk(
            _sessionOp(
                address(nft), 0, abi.encodeCall(IERC721.transferFrom, (stranger, recipient, 9))
            )
        );
        vm.assertEq(_spent(address(nft), 0), 3, "not counted");

        _handleExpectRevert(
            _sessionOp(
                address(nft),
                0,
                abi.encodeCall(IERC721.transferFrom, (address(account), recipient, 4))
            ),
            _exceeded(address(nft), 0, 1, 0)
        );
        vm.assertEq(nft.balanceOf(recipient), 4, "three of the account's, one of the stranger's");
        vm.assertEq(nft.ownerOf(4), address(account), "the fourth stayed");
    }

    function test_erc721_approveCountsOne_clearingCountsNothing() public {
        _registerNft(1);
        _handleOk(_sessionOp(address(nft), 0, abi.encodeCall(IERC721.approve, (stranger, 1))));
        vm.assertEq(_spent(address(nft), 0), 1, "an approval counts one");
        vm.assertEq(nft.getApproved(1), stranger, "approved");
        _handleOk(_sessionOp(address(nft), 0, abi.encodeCall(IERC721.approve, (address(0), 1))));
        vm.assertEq(_spent(address(nft), 0), 1, "clearing counts nothing");
        vm.assertEq(nft.getApproved(1), address(0), "cleared");
        _handleExpectRevert(
            _sessionOp(address(nft), 0, abi.encodeCall(IERC721.approve, (stranger, 2))),
            _exceeded(address(nft), 0, 1, 0)
        );
    }

    function test_erc721_setApprovalForAllRefused_revokingAllowed() public {
        _registerNft(3);
        _handleExpectRevert(
            _sessionOp(
                address(nft), 0, abi.encodeCall(IERC721.setApprovalForAll, (stranger, true))
            ),
            _unbounded(address(nft), SET_APPROVAL_FOR_ALL)
        );
        _handleOk(
            _sessionOp(
                address(nft), 0, abi.encodeCall(IERC721.setApprovalForAll, (stranger, false))
            )
        );
        vm.assertEq(_spent(address(nft), 0), 0, "revoking counts nothing");
        vm.assertFalse(nft.isApprovedForAll(address(account), stranger), "no operator");
    }

    // ---------------------------------------------------------------------------------------
    // ERC-1155
    // ---------------------------------------------------------------------------------------

    function _registerItems(uint128 limit7, uint128 limit2) internal {
        items.mint(address(account), ITEM_ID, 100);
        items.mint(address(account), 2, 100);
        items.mint(address(account), 8, 100);
        _register(
            _and(_itemCalls(), _allow(address(items), IERC1155.setApprovalForAll.selector)),
            _limits(
                _limit(ERC1155, address(items), ITEM_ID, limit7, 0, 0),
                _limit(ERC1155, address(items), 2, limit2, 0, 0)
            )
        );
    }

    function _itemTransfer(uint256 id, uint256 amount) internal view returns (bytes memory) {
        return
            abi.encodeCall(IERC1155.safeTransferFrom, (address(account), recipient, id, amount, ""));
    }

    function test_erc1155_safeTransferFromCountedById() public {
        _registerItems(10, 5);
        _handleOk(_sessionOp(address(items), 0, _itemTransfer(ITEM_ID, 6)));
        vm.assertEq(_spent(address(items), ITEM_ID), 6, "id 7: 6");
        _handleExpectRevert(
            _sessionOp(address(items), 0, _itemTransfer(ITEM_ID, 5)),
            _exceeded(address(items), ITEM_ID, 5, 4)
        );
        // An id without a limit is not counted.
        _handleOk(_sessionOp(address(items), 0, _itemTransfer(8, 100)));
        vm.assertEq(uint256(_state(address(items), 8).asset), uint256(NONE), "no limit on id 8");
        _handleOk(_sessionOp(address(items), 0, _itemTransfer(2, 5)));
        vm.assertEq(_spent(address(items), 2), 5, "id 2: 5");
        vm.assertEq(_spent(address(items), ITEM_ID), 6, "id 7 untouched");
    }

    function test_erc1155_safeBatchTransferFromCountedById() public {
        _registerItems(10, 5);
        uint256[] memory ids = new uint256[](4);
        uint256[] memory amounts = new uint256[](4);
        (ids[0], ids[1], ids[2], ids[3]) = (ITEM_ID, 8, ITEM_ID, 2);
        (amounts[0], amounts[1], amounts[2], amounts[3]) = (3, 50, 4, 5);
        bytes memory batch = abi.encodeCall(
            IERC1155.safeBatchTransferFrom, (address(account), recipient, ids, amounts, "")
        );
        _handleOk(_sessionOp(address(items), 0, batch));
        vm.assertEq(_spent(address(items), ITEM_ID), 7, "id 7: 3 + 4");
        vm.assertEq(_spent(address(items), 2), 5, "id 2: 5");
        vm.assertEq(items.balanceOf(recipient, 8), 50, "id 8 moved, uncounted");

        ids = new uint256[](2);
        amounts = new uint256[](2);
        (ids[0], ids[1]) = (8, ITEM_ID);
        (amounts[0], amounts[1]) = (1, 4);
        batch = abi.encodeCall(
            IERC1155.safeBatchTransferFrom, (address(account), recipient, ids, amounts, "")
        );
        _handleExpectRevert(
            _sessionOp(address(items), 0, batch), _exceeded(address(items), ITEM_ID, 4, 3)
        );
    }

    function test_erc1155_setApprovalForAllRefused() public {
        _registerItems(10, 5);
        _handleExpectRevert(
            _sessionOp(
                address(items), 0, abi.encodeCall(IERC1155.setApprovalForAll, (stranger, true))
            ),
            _unbounded(address(items), SET_APPROVAL_FOR_ALL)
        );
    }

    /// @dev `safeBatchTransferFrom(account, recipient, ids, amounts, "")` with its tail laid out
    /// as given (offsets count from the first parameter; the head is five words).
    function _rawBatch(uint256 idsAt, uint256 amountsAt, uint256 dataAt, bytes memory tail)
        internal
        view
        returns (bytes memory)
    {
        return abi.encodePacked(
            IERC1155.safeBatchTransferFrom.selector,
            abi.encode(address(account), recipient, idsAt, amountsAt, dataAt),
            tail
        );
    }

    /// @dev Runs `data` and checks that what each limited id was charged is what moved.
    function _assertChargedWhatMoved(bytes memory data) internal {
        uint256 moved7 = items.balanceOf(recipient, ITEM_ID);
        uint256 moved2 = items.balanceOf(recipient, 2);
        uint256 spent7 = _spent(address(items), ITEM_ID);
        uint256 spent2 = _spent(address(items), 2);
        _handleOk(_sessionOp(address(items), 0, data));
        vm.assertEq(
            _spent(address(items), ITEM_ID) - spent7,
            items.balanceOf(recipient, ITEM_ID) - moved7,
            "id 7"
        );
        vm.assertEq(
            _spent(address(items), 2) - spent2, items.balanceOf(recipient, 2) - moved2, "id 2"
        );
    }

    function test_erc1155_unusualBatchLayoutsChargeWhatMoves() public {
        _registerItems(100, 100);
        // Out of order: data (0xa0), amounts (0xc0: [3, 4]), then ids (0x120: [2, 7]).
        _assertChargedWhatMoved(
            _rawBatch(0x120, 0xc0, 0xa0, abi.encodePacked([uint256(0), 2, 3, 4, 2, 2, ITEM_ID]))
        );
        vm.assertEq(items.balanceOf(recipient, 2), 3, "id 2: 3");
        vm.assertEq(items.balanceOf(recipient, ITEM_ID), 4, "id 7: 4");

        // The same array for both: ids = amounts = [7, 7], so id 7 moves 7 twice.
        _assertChargedWhatMoved(
            _rawBatch(0xa0, 0xa0, 0x100, abi.encodePacked([uint256(2), ITEM_ID, ITEM_ID, 0]))
        );
        vm.assertEq(items.balanceOf(recipient, ITEM_ID), 4 + 14, "id 7: +14");

        // Overlapping: ids = [2, 7] at 0xa0, amounts one word in: its length is ids[0], then
        // [7, 3]. Id 2 moves 7, id 7 moves 3.
        _assertChargedWhatMoved(
            _rawBatch(0xa0, 0xc0, 0x120, abi.encodePacked([uint256(2), 2, ITEM_ID, 3, 0]))
        );
        vm.assertEq(items.balanceOf(recipient, 2), 3 + 7, "id 2: +7");
        vm.assertEq(items.balanceOf(recipient, ITEM_ID), 18 + 3, "id 7: +3");
    }

    /// @dev Any layout of the two arrays, in either order, with garbage words between: the
    /// account charges what the token moves, or refuses what exceeds the limit.
    function testFuzz_erc1155_batchLayoutChargesWhatMoves(
        bool amountsFirst,
        uint256 gap,
        uint256 seed,
        uint256 amount7,
        uint256 amount2
    ) public {
        _registerItems(10, 5);
        gap = bound(gap, 0, 3);
        amount7 = bound(amount7, 0, 14);
        amount2 = bound(amount2, 0, 7);
        bytes memory garbage = new bytes(32 * gap);
        for (uint256 i = 0; i < gap; i++) {
            bytes32 word = keccak256(abi.encode(seed, i));
            assembly ("memory-safe") {
                mstore(add(add(garbage, 32), mul(32, i)), word)
            }
        }
        bytes memory ids = abi.encodePacked([uint256(2), ITEM_ID, 2]);
        bytes memory amounts = abi.encodePacked([uint256(2), amount7, amount2]);
        // The tail: data (empty), then the first array, the garbage, the second array.
        uint256 firstAt = 0xa0 + 32;
        uint256 secondAt = firstAt + 96 + garbage.length;
        bytes memory tail = amountsFirst
            ? abi.encodePacked(uint256(0), amounts, garbage, ids)
            : abi.encodePacked(uint256(0), ids, garbage, amounts);
        bytes memory data = amountsFirst
            ? _rawBatch(secondAt, firstAt, 0xa0, tail)
            : _rawBatch(firstAt, secondAt, 0xa0, tail);

        if (amount7 > 10) {
            _handleExpectRevert(
                _sessionOp(address(items), 0, data), _exceeded(address(items), ITEM_ID, amount7, 10)
            );
        } else if (amount2 > 5) {
            _handleExpectRevert(
                _sessionOp(address(items), 0, data), _exceeded(address(items), 2, amount2, 5)
            );
        } else {
            _assertChargedWhatMoved(data);
            vm.assertEq(items.balanceOf(recipient, ITEM_ID), amount7, "id 7 moved");
            vm.assertEq(items.balanceOf(recipient, 2), amount2, "id 2 moved");
        }
    }

    /// @dev A batch the account cannot read as the ABI decoder would is refused; the token
    /// refuses the same calldata.
    function test_erc1155_malformedBatchRefused() public {
        _registerItems(10, 5);
        bytes[3] memory malformed = [
            // ids offset past the end
            _rawBatch(0x1000, 0xa0, 0xa0, abi.encodePacked([uint256(1), ITEM_ID])),
            // amounts length runs past the end
            _rawBatch(0xa0, 0xe0, 0xa0, abi.encodePacked([uint256(1), ITEM_ID, 5])),
            // ids and amounts of different lengths
            _rawBatch(0xa0, 0xe0, 0x140, abi.encodePacked([uint256(1), ITEM_ID, 2, 1, 1, 0]))
        ];
        for (uint256 i = 0; i < malformed.length; i++) {
            _handleExpectRevert(
                _sessionOp(address(items), 0, malformed[i]),
                _aa23(
                    abi.encodeWithSelector(
                        SessionKeyAccount.MalformedCallData.selector, malformed[i].length
                    )
                )
            );
            vm.assertFalse(
                _handle(_opBy(account, ownerKey, _execute(address(items), 0, malformed[i]))),
                "token"
            );
        }
        vm.assertEq(items.balanceOf(recipient, ITEM_ID), 0, "nothing moved");
    }

    // ---------------------------------------------------------------------------------------
    // Native value
    // ---------------------------------------------------------------------------------------

    function _registerNative(uint128 total, uint128 perPeriod, uint32 period) internal {
        _register(
            _list(_allow(recipient, bytes4(0))),
            _limits(_limit(NATIVE, address(0), 0, total, perPeriod, period))
        );
    }

    function _pay(uint256 value) internal view returns (PackedUserOperation memory) {
        return _sessionOp(recipient, value, "");
    }

    function _payUntil(uint256 value, uint48 deadline)
        internal
        view
        returns (PackedUserOperation memory)
    {
        return _sessionOpUntil(recipient, value, "", deadline);
    }

    function test_native_cumulativeLimit() public {
        _registerNative(0.5 ether, 0, 0);
        _handleOk(_pay(0.3 ether));
        _handleExpectRevert(_pay(0.3 ether), _exceeded(address(0), 0, 0.3 ether, 0.2 ether));
        // A batch's values are summed.
        BaseAccount.Call[] memory calls = new BaseAccount.Call[](2);
        calls[0] = _call(recipient, 0.15 ether, "");
        calls[1] = _call(recipient, 0.1 ether, "");
        _handleExpectRevert(
            _opBy(account, sessionKey, _executeBatch(calls)),
            _exceeded(address(0), 0, 0.25 ether, 0.2 ether)
        );
        calls[0].value = 0.1 ether;
        _handleOk(_opBy(account, sessionKey, _executeBatch(calls)));
        vm.assertEq(_spent(address(0), 0), 0.5 ether, "all spent");
        vm.assertEq(recipient.balance, 0.5 ether, "paid the limit");
    }

    function test_native_perPeriodAndCumulative() public {
        _registerNative(1 ether, 0.4 ether, DAY);
        _handleOk(_pay(0.3 ether));
        _handleExpectRevert(_pay(0.2 ether), _periodExceeded(address(0), 0, 0.2 ether, 0.1 ether));
        _handleOk(_pay(0.1 ether));

        vm.warp(TOMORROW);
        _handleOk(_payUntil(0.4 ether, TOMORROW + 1 hours));
        SessionKeyAccount.SpendState memory state = _state(address(0), 0);
        vm.assertEq(state.periodIndex, TODAY + 1, "tomorrow");
        vm.assertEq(state.periodSpent, 0.4 ether, "tomorrow's allowance used");

        vm.warp(DAY_AFTER + 1 hours);
        _handleExpectRevert(_pay(0.3 ether), _exceeded(address(0), 0, 0.3 ether, 0.2 ether));
        _handleOk(_pay(0.2 ether));
        vm.assertEq(_spent(address(0), 0), 1 ether, "the total");
        vm.assertEq(recipient.balance, 1 ether, "paid");
    }

    // ---------------------------------------------------------------------------------------
    // Periods
    // ---------------------------------------------------------------------------------------

    /// @dev A period's allowance runs out, and the next period starts from zero. An op for the
    /// next period is charged to it and is not valid before it starts.
    function test_period_newPeriodStartsFromZero() public {
        _registerGold(1000, 100, DAY);
        _handleOk(_sessionOp(address(gold), 0, _goldTransfer(100)));
        _handleExpectRevert(
            _sessionOp(address(gold), 0, _goldTransfer(1)), _periodExceeded(address(gold), 0, 1, 0)
        );

        PackedUserOperation memory tomorrow =
            _sessionOpUntil(address(gold), 0, _goldTransfer(100), TOMORROW + 1 hours);
        // Signed today for tomorrow: not due (validAfter = tomorrow's start - 1).
        _handleExpectRevert(tomorrow, _aa22());
        vm.warp(TOMORROW - 1);
        _handleExpectRevert(tomorrow, _aa22());
        vm.warp(TOMORROW);
        _handleOk(tomorrow);

        SessionKeyAccount.SpendState memory state = _state(address(gold), 0);
        vm.assertEq(state.periodIndex, TODAY + 1, "charged to tomorrow");
        vm.assertEq(state.periodSpent, 100, "from zero");
        vm.assertEq(state.spent, 200, "the total counts both");
        _handleExpectRevert(
            _sessionOp(address(gold), 0, _goldTransfer(1)), _periodExceeded(address(gold), 0, 1, 0)
        );
    }

    function test_period_opExpiresAtItsDeadline() public {
        _registerGold(1000, 100, DAY);
        uint48 deadline = TOMORROW + 10;
        PackedUserOperation memory op =
            _sessionOpUntil(address(gold), 0, _goldTransfer(5), deadline);
        vm.warp(deadline + 1);
        _handleExpectRevert(op, _aa22());
        vm.warp(deadline);
        _handleOk(op);
    }

    /// @dev The period is chosen by the deadline, not the clock: an op due today but with its
    /// deadline tomorrow is charged to tomorrow, and waits for it.
    function test_period_chargedByTheDeadline() public {
        _registerGold(1000, 100, DAY);
        PackedUserOperation memory op =
            _sessionOpUntil(address(gold), 0, _goldTransfer(60), TOMORROW);
        _handleExpectRevert(op, _aa22());
        vm.warp(TOMORROW);
        _handleOk(op);
        vm.assertEq(_state(address(gold), 0).periodIndex, TODAY + 1, "tomorrow's");
        // The deadline is the period's very first second; the op just made it.
        vm.assertEq(gold.balanceOf(recipient), 60, "moved");
    }

    /// @dev Once a later period has been charged, an op for an earlier one is refused.
    function test_period_olderPeriodRefused() public {
        _registerGold(1000, 100, DAY);
        vm.warp(TOMORROW);
        _handleOk(_sessionOp(address(gold), 0, _goldTransfer(10)));
        // Signed for a deadline in today's period, which has ended.
        PackedUserOperation memory late =
            _sessionOpUntil(address(gold), 0, _goldTransfer(10), TOMORROW - 1);
        _handleExpectRevert(
            late,
            _aa23(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyPeriodOver.selector,
                    address(gold),
                    0,
                    TODAY,
                    TODAY + 1
                )
            )
        );
    }

    /// @dev The validationData the account returns: validAfter is one second before the
    /// charged period's start, validUntil the op's deadline. (Read by calling validateUserOp as
    /// the EntryPoint.)
    function test_period_validationDataCarriesThePeriodStart() public {
        _registerGold(1000, 100, DAY);
        uint48 deadline = TOMORROW + 5 hours;
        PackedUserOperation memory op =
            _sessionOpUntil(address(gold), 0, _goldTransfer(1), deadline);
        bytes32 userOpHash = entryPoint.getUserOpHash(op);
        vm.prank(address(entryPoint));
        uint256 validationData = account.validateUserOp(op, userOpHash, 0);
        vm.assertEq(validationData >> 208, TOMORROW - 1, "validAfter = period start - 1");
        vm.assertEq(
            (validationData >> 160) & type(uint48).max, deadline, "validUntil = the deadline"
        );
        vm.assertEq(validationData & type(uint160).max, 0, "no aggregator, signature valid");

        // Without a charge, validAfter is the registration's.
        op = _sessionOp(address(gold), 0, _goldTransfer(0));
        userOpHash = entryPoint.getUserOpHash(op);
        vm.prank(address(entryPoint));
        validationData = account.validateUserOp(op, userOpHash, 0);
        vm.assertEq(validationData >> 208, NOW - 1, "the registration's validAfter");
    }

    function test_period_totalCapsAcrossPeriods() public {
        _registerGold(250, 100, DAY);
        _handleOk(_sessionOp(address(gold), 0, _goldTransfer(100)));
        vm.warp(TOMORROW + 1);
        _handleOk(_sessionOp(address(gold), 0, _goldTransfer(100)));
        vm.warp(DAY_AFTER + 1);
        _handleExpectRevert(
            _sessionOp(address(gold), 0, _goldTransfer(100)), _exceeded(address(gold), 0, 100, 50)
        );
        _handleOk(_sessionOp(address(gold), 0, _goldTransfer(50)));
        vm.assertEq(gold.balanceOf(recipient), 250, "the total, over three days");
    }

    /// @dev An op whose deadline lies `daysAhead` days on is valid exactly from the start of
    /// its deadline's period to the deadline.
    function testFuzz_period_opValidOnlyInsideItsPeriod(
        uint256 daysAhead,
        uint256 offset,
        uint256 at
    ) public {
        _registerGold(1000, 100, DAY);
        daysAhead = bound(daysAhead, 0, 30);
        uint256 start = (uint256(TODAY) + daysAhead) * DAY;
        uint48 deadline = _bound48(offset, start, start + DAY - 1);
        if (deadline <= NOW) deadline = NOW + 1;
        at = bound(at, NOW, uint256(deadline) + DAY);
        PackedUserOperation memory op =
            _sessionOpUntil(address(gold), 0, _goldTransfer(7), deadline);
        vm.warp(at);
        if (at >= start && at <= deadline) {
            _handleOk(op);
            vm.assertEq(_state(address(gold), 0).periodIndex, TODAY + daysAhead, "its period");
        } else {
            _handleExpectRevert(op, _aa22());
        }
    }

    /// @dev Two ops, the second in the same period or a later one: a later period starts from
    /// zero, the same one goes on from what was spent.
    function testFuzz_period_allowancePerPeriod(uint256 first, uint256 second, uint256 daysLater)
        public
    {
        _registerGold(10_000, 100, DAY);
        first = bound(first, 1, 100);
        second = bound(second, 1, 200);
        daysLater = bound(daysLater, 0, 20);
        _handleOk(_sessionOp(address(gold), 0, _goldTransfer(first)));
        vm.warp(NOW + daysLater * DAY);
        uint256 left = daysLater == 0 ? 100 - first : 100;
        if (second <= left) {
            _handleOk(_sessionOp(address(gold), 0, _goldTransfer(second)));
            SessionKeyAccount.SpendState memory state = _state(address(gold), 0);
            vm.assertEq(state.periodIndex, TODAY + daysLater, "period");
            vm.assertEq(state.periodSpent, 100 - left + second, "period spent");
            vm.assertEq(state.spent, first + second, "total spent");
        } else {
            _handleExpectRevert(
                _sessionOp(address(gold), 0, _goldTransfer(second)),
                _periodExceeded(address(gold), 0, second, left)
            );
        }
    }

    // ---------------------------------------------------------------------------------------
    // Registration refusals
    // ---------------------------------------------------------------------------------------

    function _expectLimitRefused(
        SessionKeyAccount.CallPermission[] memory calls,
        SessionKeyAccount.SpendLimit memory bad
    ) internal {
        // A valid limit first, so that the index names the bad one.
        SessionKeyAccount.SpendLimit[] memory limits =
            _limits(_limit(ERC20, address(gold), 0, 100, 10, DAY), bad);
        bytes32 registration = _newRegistration(secondSession);
        SessionKeyAccount.SessionPermissions memory permissions = _permissionsWith(calls, limits);
        vm.prank(owner);
        vm.expectRevert(
            abi.encodeWithSelector(SessionKeyAccount.InvalidSpendLimit.selector, uint256(1))
        );
        account.registerSessionKey(
            registration, _ethSigner(secondSession), NOW - 1, NOW + 1 days, permissions
        );
    }

    function _expectLimitRefused(SessionKeyAccount.SpendLimit memory bad) internal {
        _expectLimitRefused(_goldCalls(), bad);
    }

    function test_register_refusesAssetNone() public {
        _expectLimitRefused(_limit(NONE, address(allowanceToken), 0, 100, 0, 0));
    }

    function test_register_refusesPerPeriodWithoutPeriod() public {
        _expectLimitRefused(_limit(ERC20, address(allowanceToken), 0, 100, 10, 0));
    }

    function test_register_refusesNativeWithATokenOrAnId() public {
        _expectLimitRefused(_limit(NATIVE, address(allowanceToken), 0, 100, 0, 0));
        _expectLimitRefused(_limit(NATIVE, address(0), 1, 100, 0, 0));
    }

    function test_register_refusesAnIdForERC20OrERC721() public {
        _expectLimitRefused(_limit(ERC20, address(allowanceToken), 1, 100, 0, 0));
        _expectLimitRefused(_limit(ERC721, address(nft), 1, 100, 0, 0));
    }

    function test_register_refusesADuplicate() public {
        _expectLimitRefused(_limit(ERC20, address(gold), 0, 5, 0, 0));
        SessionKeyAccount.SpendLimit[] memory limits = _limits(
            _limit(ERC1155, address(items), ITEM_ID, 10, 0, 0),
            _limit(ERC1155, address(items), ITEM_ID, 20, 0, 0)
        );
        bytes32 registration = _newRegistration(secondSession);
        SessionKeyAccount.SessionPermissions memory permissions =
            _permissionsWith(_itemCalls(), limits);
        vm.prank(owner);
        vm.expectRevert(
            abi.encodeWithSelector(SessionKeyAccount.InvalidSpendLimit.selector, uint256(1))
        );
        account.registerSessionKey(
            registration, _ethSigner(secondSession), NOW - 1, NOW + 1 days, permissions
        );
    }

    function test_register_refusesATokenAllowedWithAnySelector() public {
        _expectLimitRefused(
            _and(_goldCalls(), _allowAny(address(allowanceToken))),
            _limit(ERC20, address(allowanceToken), 0, 100, 0, 0)
        );
    }

    function test_register_refusesTwoAssetsForOneToken() public {
        _expectLimitRefused(_limit(ERC721, address(gold), 0, 1, 0, 0));
        _expectLimitRefused(_limit(ERC1155, address(gold), 3, 1, 0, 0));
    }

    function test_register_refusesForbiddenTokens() public {
        _expectLimitRefused(_limit(ERC20, address(account), 0, 1, 0, 0));
        _expectLimitRefused(_limit(ERC20, address(entryPoint), 0, 1, 0, 0));
        _expectLimitRefused(_limit(ERC20, address(0), 0, 1, 0, 0));
    }

    /// @dev Through an owner op, an invalid limit reverts the registration in execution.
    function test_register_invalidLimitRevertsTheOwnerOp() public {
        SessionKeyAccount.SessionPermissions memory permissions =
            _permissionsWith(_goldCalls(), _limits(_limit(NONE, address(gold), 0, 1, 0, 0)));
        bytes memory callData =
            _registerCallData(address(account), secondSession, NOW - 1, NOW + 1 days, permissions);
        _handleExpectExecutionRevert(
            _opBy(account, ownerKey, callData),
            abi.encodeWithSelector(SessionKeyAccount.InvalidSpendLimit.selector, uint256(0))
        );
        vm.assertFalse(_isRegistered(account, secondSession), "not registered");
    }

    // ---------------------------------------------------------------------------------------
    // The view
    // ---------------------------------------------------------------------------------------

    function test_getSpendLimit_reflectsTheRegistrationAndTheSpending() public {
        items.mint(address(account), ITEM_ID, 100);
        bytes32 registration = _register(
            _and(_goldCalls(), _allow(address(items), IERC1155.safeTransferFrom.selector)),
            _limits(
                _limit(ERC20, address(gold), 0, 1000, 100, DAY),
                _limit(ERC1155, address(items), ITEM_ID, 10, 0, 0)
            )
        );
        SessionKeyAccount.SpendState memory state =
            account.getSpendLimit(registration, address(gold), 0);
        vm.assertEq(uint256(state.asset), uint256(ERC20), "asset");
        vm.assertEq(state.period, DAY, "period");
        vm.assertEq(state.total, 1000, "total");
        vm.assertEq(state.perPeriod, 100, "perPeriod");
        vm.assertEq(state.spent, 0, "nothing spent");
        vm.assertEq(state.periodIndex, 0, "no period yet");
        vm.assertEq(state.periodSpent, 0, "nothing this period");

        _handleOk(_sessionOp(address(gold), 0, _goldTransfer(30)));
        _handleOk(_sessionOp(address(items), 0, _itemTransfer(ITEM_ID, 4)));
        state = account.getSpendLimit(registration, address(gold), 0);
        vm.assertEq(state.spent, 30, "spent");
        vm.assertEq(state.periodIndex, TODAY, "today");
        vm.assertEq(state.periodSpent, 30, "today's");
        state = account.getSpendLimit(registration, address(items), ITEM_ID);
        vm.assertEq(uint256(state.asset), uint256(ERC1155), "asset");
        vm.assertEq(state.total, 10, "total");
        vm.assertEq(state.spent, 4, "spent");
        vm.assertEq(state.period, 0, "no period");
        vm.assertEq(state.periodIndex, 0, "no period index");

        vm.assertEq(
            uint256(account.getSpendLimit(registration, address(items), 8).asset), 0, "id 8"
        );
        vm.assertEq(uint256(account.getSpendLimit(registration, address(nft), 0).asset), 0, "nft");
        vm.assertEq(uint256(account.getSpendLimit(registration, address(0), 0).asset), 0, "native");
        // Another registration of the same key starts clean.
        bytes32 next = _register(_goldCalls(), _limits(_limit(ERC20, address(gold), 0, 5, 0, 0)));
        vm.assertEq(account.getSpendLimit(next, address(gold), 0).spent, 0, "a new registration");
        vm.assertEq(account.getSpendLimit(registration, address(gold), 0).spent, 30, "the old one");
    }
}
