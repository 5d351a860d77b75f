// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {SessionKeyAccount} from "../src/SessionKeyAccount.sol";
import {AcceptAllPaymaster} from "./utils/AcceptAllPaymaster.sol";
import {AccountTestBase} from "./utils/AccountTestBase.sol";
import {BaseAccount} from "@account-abstraction/contracts/core/BaseAccount.sol";
import {
    PackedUserOperation
} from "@account-abstraction/contracts/interfaces/PackedUserOperation.sol";

/// @notice What a session key's operations may cost the account. The key signs the gas fields
/// and anyone may bundle its op with any beneficiary, so without a gas budget a stolen key
/// could move the account's ETH to itself as "fees". Every op is charged its worst case,
/// (verification + call + preVerification gas) * maxFeePerGas, which bounds what the
/// EntryPoint can take from the account.
contract SessionKeyGasBudgetTest is AccountTestBase {
    /// @dev The account's ETH, held directly or as EntryPoint deposit.
    function _funds(SessionKeyAccount account) internal view returns (uint256) {
        return address(account).balance + entryPoint.balanceOf(address(account));
    }

    function _mintPermissionsWithGas(uint128 gasBudget)
        internal
        view
        returns (SessionKeyAccount.SessionPermissions memory)
    {
        return _permissions(10, 0, 0, gasBudget, _list(_allow(address(items), items.mint.selector)));
    }

    function test_gasBudget_chargesEachOpItsWorstCase() public {
        SessionKeyAccount account = _deployWithSession(_mintPermissions(10));
        _sessionMint(account, sessionKey);
        _sessionMint(account, sessionKey);
        vm.assertEq(_sessionOf(account, session).gasSpent, 2 * OP_MAX_GAS_COST, "gas charged");
    }

    function test_gasBudget_refusesTheOpThatWouldExceedIt() public {
        SessionKeyAccount account = _deployWithSession(_mintPermissionsWithGas(2 * OP_MAX_GAS_COST));
        _sessionMint(account, sessionKey);
        _sessionMint(account, sessionKey);

        _handleExpectRevert(
            _opBy(account, sessionKey, _mintCall(address(account))),
            _aa23(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyGasBudgetExceeded.selector, OP_MAX_GAS_COST, 0
                )
            )
        );
        vm.assertEq(_balance(account), 2, "two items minted");
    }

    /// The attack the budget stops: the key holder signs one mint with an 8M preVerificationGas
    /// at 1000 gwei, bundles it itself and names itself beneficiary.
    function test_gasBudget_stolenKeyCannotDrainTheAccountThroughFees() public {
        SessionKeyAccount account = _deployWithSession(_mintPermissions(1));
        uint256 fundsBefore = _funds(account);

        PackedUserOperation memory op = _op(address(account), "", _mintCall(address(account)));
        op.preVerificationGas = 8_000_000;
        op.gasFees = bytes32((uint256(1000 gwei) << 128) | 1000 gwei);
        op = _signBySession(op, sessionKey);
        uint256 maxCost = (VERIFICATION_GAS_LIMIT + CALL_GAS_LIMIT + 8_000_000) * 1000 gwei;

        vm.prank(session, session);
        vm.expectRevert(
            _aa23(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyGasBudgetExceeded.selector,
                    maxCost,
                    DEFAULT_GAS_BUDGET
                )
            )
        );
        entryPoint.handleOps(_one(op), payable(session));

        vm.assertEq(session.balance, 0, "the key holder got nothing");
        vm.assertEq(_funds(account), fundsBefore, "the account paid nothing");
    }

    /// With a paymaster the account pays nothing, so nothing is charged: a key with no gas
    /// budget at all can still act when its ops are sponsored.
    function test_gasBudget_sponsoredOpsAreNotCharged() public {
        AcceptAllPaymaster paymaster = new AcceptAllPaymaster(entryPoint);
        entryPoint.depositTo{value: 1 ether}(address(paymaster));
        SessionKeyAccount account = _deployWithSession(_mintPermissionsWithGas(0));
        uint256 fundsBefore = _funds(account);

        PackedUserOperation memory op = _op(address(account), "", _mintCall(address(account)));
        op.paymasterAndData = abi.encodePacked(address(paymaster), uint128(100_000), uint128(0));
        _handleOk(_signBySession(op, sessionKey));

        vm.assertEq(_balance(account), 1, "item minted");
        vm.assertEq(_sessionOf(account, session).gasSpent, 0, "nothing charged");
        vm.assertEq(_funds(account), fundsBefore, "the paymaster paid");
    }

    function testFuzz_gasBudget_opAcceptedIffItsWorstCaseFits(
        uint128 gasBudget,
        uint256 preVerificationGas,
        uint256 maxFee
    ) public {
        preVerificationGas = bound(preVerificationGas, 21_000, 2_000_000);
        maxFee = bound(maxFee, 1 gwei, 200 gwei);
        gasBudget = uint128(bound(gasBudget, 0, 1 ether));
        SessionKeyAccount account = _deployWithSession(_mintPermissionsWithGas(gasBudget));

        PackedUserOperation memory op = _op(address(account), "", _mintCall(address(account)));
        op.preVerificationGas = preVerificationGas;
        op.gasFees = bytes32((uint256(maxFee) << 128) | maxFee);
        vm.fee(maxFee);
        op = _signBySession(op, sessionKey);
        uint256 maxCost = (VERIFICATION_GAS_LIMIT + CALL_GAS_LIMIT + preVerificationGas) * maxFee;

        if (maxCost <= gasBudget) {
            _handleOk(op);
            vm.assertEq(_sessionOf(account, session).gasSpent, maxCost, "charged");
        } else {
            _handleExpectRevert(
                op,
                _aa23(
                    abi.encodeWithSelector(
                        SessionKeyAccount.SessionKeyGasBudgetExceeded.selector, maxCost, gasBudget
                    )
                )
            );
        }
    }
}

/// @notice A session key signs only in its own EntryPoint nonce lanes, whose keys carry its id
/// (for a secp256k1 key, its address; see SessionKeyKinds.t.sol for the P-256 kinds) in the top
/// 160 bits, so it can neither consume nor invalidate the sequence of operations the owner has
/// signed. Its 2^32 lanes are independent of each other.
contract SessionKeyNonceLaneTest is AccountTestBase {
    SessionKeyAccount internal account;

    function setUp() public override {
        super.setUp();
        account = _deployWithSession(_mintPermissions(10));
    }

    function _mintIn(uint192 nonceKey) internal view returns (PackedUserOperation memory op) {
        op = _op(address(account), "", _mintCall(address(account)));
        op.nonce = entryPoint.getNonce(address(account), nonceKey);
        op = _signSession(op, sessionKey, registrationOf[session], _opDeadline());
    }

    function test_nonce_sessionKeyRunsInItsOwnLanes() public {
        _handleOk(_mintIn(_lane(session, 0)));
        _handleOk(_mintIn(_lane(session, 7)));
        _handleOk(_mintIn(_lane(session, 7)));
        vm.assertEq(
            entryPoint.getNonce(address(account), _lane(session, 7)),
            (uint256(_lane(session, 7)) << 64) | 2,
            "two ops in lane 7"
        );
        vm.assertEq(entryPoint.getNonce(address(account), 0), 1, "owner lane untouched");
    }

    function test_nonce_sessionKeyRefusedInTheOwnerLane() public {
        _handleExpectRevert(
            _mintIn(0),
            _aa23(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyNonceKeyMismatch.selector, session, uint192(0)
                )
            )
        );
    }

    function test_nonce_sessionKeyRefusedInAnotherKeysLane() public {
        uint192 other = _lane(secondSession, 0);
        _handleExpectRevert(
            _mintIn(other),
            _aa23(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyNonceKeyMismatch.selector, session, other
                )
            )
        );
    }

    function testFuzz_nonce_sessionKeyRefusedOutsideItsLanes(uint192 nonceKey) public {
        vm.assume(uint160(nonceKey >> 32) != uint160(session));
        _handleExpectRevert(
            _mintIn(nonceKey),
            _aa23(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyNonceKeyMismatch.selector, session, nonceKey
                )
            )
        );
    }

    function testFuzz_nonce_everySubLaneIsOpen(uint32 subLane) public {
        _handleOk(_mintIn(_lane(session, subLane)));
        vm.assertEq(_balance(account), 1, "minted");
    }
}

/// @notice An empty batch makes no call, so it would slip past the call limit while the account
/// still pays for the op: it is refused.
contract SessionKeyEmptyBatchTest is AccountTestBase {
    function _emptyBatch() internal pure returns (bytes memory) {
        return _executeBatch(new BaseAccount.Call[](0));
    }

    function test_emptyBatch_refusedEvenWithCallsLeft() public {
        SessionKeyAccount account = _deployWithSession(_mintPermissions(5));
        _handleExpectRevert(
            _opBy(account, sessionKey, _emptyBatch()),
            _aa23(abi.encodeWithSelector(SessionKeyAccount.SessionKeyEmptyBatch.selector))
        );
    }

    function test_emptyBatch_zeroLimitKeyCannotRunOps() public {
        SessionKeyAccount account = _deployWithSession(_mintPermissions(0));
        _handleExpectRevert(
            _opBy(account, sessionKey, _emptyBatch()),
            _aa23(abi.encodeWithSelector(SessionKeyAccount.SessionKeyEmptyBatch.selector))
        );
        _handleExpectRevert(
            _opBy(account, sessionKey, _mintCall(address(account))),
            _aa23(
                abi.encodeWithSelector(SessionKeyAccount.SessionKeyCallLimitReached.selector, 1, 0)
            )
        );
        vm.assertEq(
            entryPoint.getNonce(address(account), _lane(session, 0)),
            uint256(_lane(session, 0)) << 64,
            "no op ran"
        );
    }
}
