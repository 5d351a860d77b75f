// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {SessionKeyAccount} from "../src/SessionKeyAccount.sol";
import {Signer} from "../src/Signers.sol";
import {SponsorPaymaster} from "../src/SponsorPaymaster.sol";
import {AccountTestBase} from "./utils/AccountTestBase.sol";
import {Vm, console} from "./utils/TestBase.sol";
import {IEntryPoint} from "@account-abstraction/contracts/interfaces/IEntryPoint.sol";
import {IPaymaster} from "@account-abstraction/contracts/interfaces/IPaymaster.sol";
import {IStakeManager} from "@account-abstraction/contracts/interfaces/IStakeManager.sol";
import {
    PackedUserOperation
} from "@account-abstraction/contracts/interfaces/PackedUserOperation.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @notice The world of the paymaster tests: the account world of AccountTestBase plus a
/// SponsorPaymaster with a deposit, its approving signer, and the helpers that approve an op.
/// An approved op is built in the order a relayer builds it: the op with the paymaster's gas
/// limits, then the signer's approval in paymasterAndData, then the account's signature, which
/// covers paymasterAndData through the userOpHash.
abstract contract SponsorPaymasterTestBase is AccountTestBase {
    uint128 internal constant PM_VERIFICATION_GAS_LIMIT = 100_000;
    uint128 internal constant PM_POST_OP_GAS_LIMIT = 0;
    uint256 internal constant PAYMASTER_DEPOSIT = 1 ether;
    /// @dev The default approval window: open now, for an hour.
    uint48 internal constant VALID_AFTER = NOW - 1;
    uint48 internal constant VALID_UNTIL = NOW + 1 hours;
    uint256 internal constant LOCAL_CHAIN_ID = 31337;

    uint256 internal sponsorKey = 0x5B0250;
    address internal sponsor;
    address internal paymasterOwner = address(0x9A7E5);
    SponsorPaymaster internal paymaster;

    function setUp() public virtual override {
        super.setUp();
        sponsor = vm.addr(sponsorKey);
        paymaster = _newPaymaster();
        vm.label(sponsor, "sponsor");
        vm.label(paymasterOwner, "paymasterOwner");
        vm.label(address(paymaster), "SponsorPaymaster");
    }

    function _newPaymaster() internal returns (SponsorPaymaster pm) {
        pm = new SponsorPaymaster(entryPoint, paymasterOwner, sponsor);
        pm.deposit{value: PAYMASTER_DEPOSIT}();
    }

    /// @dev The 52 static bytes of paymasterAndData: paymaster and its two gas limits.
    function _static(address pm) internal pure returns (bytes memory) {
        return abi.encodePacked(pm, PM_VERIFICATION_GAS_LIMIT, PM_POST_OP_GAS_LIMIT);
    }

    /// @dev The signer's signature approving `op` for `pm` over the window: EIP-191
    /// personal-sign over `pm.getHash`, which reads only the static fields of paymasterAndData.
    function _approval(
        PackedUserOperation memory op,
        SponsorPaymaster pm,
        uint256 signerKey,
        uint48 validUntil,
        uint48 validAfter
    ) internal view returns (bytes memory) {
        op.paymasterAndData = _static(address(pm));
        return _sig(signerKey, _personalDigest(pm.getHash(op, validUntil, validAfter)));
    }

    /// @dev Puts the approval of `signerKey` for `pm` in `op.paymasterAndData`.
    function _sponsor(
        PackedUserOperation memory op,
        SponsorPaymaster pm,
        uint256 signerKey,
        uint48 validUntil,
        uint48 validAfter
    ) internal view returns (PackedUserOperation memory) {
        bytes memory signature = _approval(op, pm, signerKey, validUntil, validAfter);
        op.paymasterAndData =
            abi.encodePacked(_static(address(pm)), validUntil, validAfter, signature);
        return op;
    }

    /// @dev `callData` from `account`, approved by the sponsor for the default window, then
    /// signed by the account's owner.
    function _sponsoredOp(address account, bytes memory initCode, bytes memory callData)
        internal
        view
        returns (PackedUserOperation memory)
    {
        PackedUserOperation memory op = _op(account, initCode, callData);
        _sponsor(op, paymaster, sponsorKey, VALID_UNTIL, VALID_AFTER);
        return _signPersonalAsIs(op, ownerKey);
    }

    /// @dev An owner-signed mint from `account`, approved as `_sponsor` does.
    function _mintApprovedBy(
        SessionKeyAccount account,
        SponsorPaymaster pm,
        uint256 signerKey,
        uint48 validUntil,
        uint48 validAfter
    ) internal view returns (PackedUserOperation memory op) {
        op = _op(address(account), "", _mintCall(address(account)));
        _sponsor(op, pm, signerKey, validUntil, validAfter);
        _signPersonalAsIs(op, ownerKey);
    }

    /// @dev Deploys the owner's account (salt 1) without a wei: no balance, no deposit.
    function _unfundedAccount() internal returns (SessionKeyAccount account) {
        account = factory.createAccount(_ethSigner(owner), 1);
        vm.label(address(account), "unfundedAccount");
        vm.assertEq(address(account).balance, 0, "account holds no ETH");
        vm.assertEq(entryPoint.balanceOf(address(account)), 0, "account has no deposit");
    }

    /// @dev Bundles `op`, requires it to succeed with `paymaster` named in its
    /// UserOperationEvent, and returns what the EntryPoint charged for it.
    function _handleSponsored(PackedUserOperation memory op)
        internal
        returns (uint256 actualGasCost)
    {
        bytes32 userOpHash = entryPoint.getUserOpHash(op);
        vm.recordLogs();
        vm.prank(bundler, bundler);
        entryPoint.handleOps(_one(op), beneficiary);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i = 0; i < logs.length; i++) {
            if (
                logs[i].emitter == address(entryPoint)
                    && logs[i].topics[0] == IEntryPoint.UserOperationEvent.selector
                    && logs[i].topics[1] == userOpHash
            ) {
                vm.assertEq(
                    address(uint160(uint256(logs[i].topics[3]))),
                    address(paymaster),
                    "the paymaster is named"
                );
                bool success;
                (, success, actualGasCost,) =
                    abi.decode(logs[i].data, (uint256, bool, uint256, uint256));
                vm.assertTrue(success, "user operation execution failed");
                return actualGasCost;
            }
        }
        revert("no UserOperationEvent for the op");
    }

    /// @dev What `paymaster.validatePaymasterUserOp` returns for `op`, called as the EntryPoint.
    function _validate(SponsorPaymaster pm, PackedUserOperation memory op)
        internal
        returns (bytes memory context, uint256 validationData)
    {
        // The hash first: a prank covers only the next call.
        bytes32 userOpHash = entryPoint.getUserOpHash(op);
        vm.prank(address(entryPoint));
        return pm.validatePaymasterUserOp(op, userOpHash, 0);
    }

    /// @dev The low 160 bits of validationData: 0 for an approval, 1 (SIG_VALIDATION_FAILED)
    /// for a refusal.
    function _aggregator(uint256 validationData) internal pure returns (uint256) {
        return validationData & type(uint160).max;
    }

    // ---------------------------------------------------------------------------------------
    // EntryPoint revert data
    // ---------------------------------------------------------------------------------------

    function _aa32() internal pure returns (bytes memory) {
        return abi.encodeWithSelector(
            IEntryPoint.FailedOp.selector, uint256(0), "AA32 paymaster expired or not due"
        );
    }

    function _aa34() internal pure returns (bytes memory) {
        return
            abi.encodeWithSelector(
                IEntryPoint.FailedOp.selector, uint256(0), "AA34 signature error"
            );
    }

    /// @dev validatePaymasterUserOp reverted with `inner`.
    function _aa33(bytes memory inner) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(
            IEntryPoint.FailedOpWithRevert.selector, uint256(0), "AA33 reverted", inner
        );
    }

    function _badLength(uint256 length) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(
            SponsorPaymaster.InvalidPaymasterAndDataLength.selector, uint256(129), length
        );
    }

    function _notOwner(address caller) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, caller);
    }
}

/// @notice Sponsored operations end to end through the canonical EntryPoint v0.8: the
/// paymaster's deposit pays, the account pays nothing.
contract SponsorPaymasterSponsorshipTest is SponsorPaymasterTestBase {
    function test_sponsor_accountWithoutEthMints() public {
        SessionKeyAccount account = _unfundedAccount();
        uint256 depositBefore = paymaster.getDeposit();

        uint256 actualGasCost =
            _handleSponsored(_sponsoredOp(address(account), "", _mintCall(address(account))));

        vm.assertEq(_balance(account), 1, "item minted");
        vm.assertGt(actualGasCost, 0, "the op cost something");
        vm.assertEq(
            paymaster.getDeposit(), depositBefore - actualGasCost, "the deposit paid the cost"
        );
        vm.assertEq(beneficiary.balance, actualGasCost, "the beneficiary got the cost");
        vm.assertEq(address(account).balance, 0, "account balance still 0");
        vm.assertEq(entryPoint.balanceOf(address(account)), 0, "account deposit still 0");
    }

    /// The very first op of a counterfactual account without ETH: deploy and mint, sponsored.
    function test_sponsor_deploysAndMintsFromAnEmptyCounterfactualAccount() public {
        address predicted = factory.getAddress(_ethSigner(owner), 2);
        uint256 depositBefore = paymaster.getDeposit();

        uint256 actualGasCost =
            _handleSponsored(_sponsoredOp(predicted, _initCode(owner, 2), _mintCall(predicted)));

        SessionKeyAccount account = SessionKeyAccount(payable(predicted));
        vm.assertEq(account.owner(), owner, "account deployed");
        vm.assertEq(_balance(account), 1, "item minted");
        vm.assertEq(paymaster.getDeposit(), depositBefore - actualGasCost, "deposit paid");
        vm.assertEq(predicted.balance, 0, "account balance still 0");
        vm.assertEq(entryPoint.balanceOf(predicted), 0, "account deposit still 0");
    }

    /// A session key's op is sponsored the same way: the paymaster does not care who signs
    /// for the account.
    function test_sponsor_sessionKeyOp() public {
        SessionKeyAccount account = _deployWithSession(_mintPermissionsNoGas());
        PackedUserOperation memory op = _op(address(account), "", _mintCall(address(account)));
        _useNonceLaneOf(op, session);
        _sponsor(op, paymaster, sponsorKey, VALID_UNTIL, VALID_AFTER);
        _handleSponsored(_signSession(op, sessionKey, registrationOf[session], _opDeadline()));
        vm.assertEq(_balance(account), 1, "item minted");
    }

    /// A passkey-owned account without ETH deploys in a sponsored first op that registers a
    /// raw P-256 session key, whose op is sponsored too.
    function test_sponsor_passkeyAccountAndP256SessionKey() public {
        Key memory passkey = _webAuthnKey(0xFA55C0DE);
        Signer memory passkeySigner = _signerOf(passkey);
        Key memory key = _p256Key(0x9256);
        address predicted = factory.getAddress(passkeySigner, 0);

        PackedUserOperation memory op = _op(
            predicted,
            _initCode(passkeySigner, 0),
            _registerCallData(predicted, key, NOW - 1, NOW + 1 days, _mintPermissionsNoGas())
        );
        _sponsor(op, paymaster, sponsorKey, VALID_UNTIL, VALID_AFTER);
        _handleSponsored(_signAsOwner(op, passkey));

        op = _op(predicted, "", _mintCall(predicted));
        _useNonceLaneOf(op, _idOf(key));
        _sponsor(op, paymaster, sponsorKey, VALID_UNTIL, VALID_AFTER);
        _handleSponsored(_signSession(op, key, registrationOf[_idOf(key)], _opDeadline()));

        SessionKeyAccount account = SessionKeyAccount(payable(predicted));
        vm.assertEq(account.owner(), _idOf(passkey), "the passkey owns it");
        vm.assertEq(_balance(account), 1, "the P-256 key minted");
        vm.assertEq(predicted.balance, 0, "account balance still 0");
        vm.assertEq(entryPoint.balanceOf(predicted), 0, "account deposit still 0");
    }

    function _mintPermissionsNoGas()
        internal
        view
        returns (SessionKeyAccount.SessionPermissions memory)
    {
        return _permissions(1, 0, 0, 0, _list(_allow(address(items), items.mint.selector)));
    }

    function test_sponsor_approvalIsSpentWithItsOp() public {
        SessionKeyAccount account = _unfundedAccount();
        PackedUserOperation memory op =
            _sponsoredOp(address(account), "", _mintCall(address(account)));
        _handleSponsored(op);

        // The same bytes again: the nonce is used, the account refuses it (AA25).
        _handleExpectRevert(
            op,
            abi.encodeWithSelector(
                IEntryPoint.FailedOp.selector, uint256(0), "AA25 invalid account nonce"
            )
        );
        vm.assertEq(_balance(account), 1, "minted once");
    }

    function test_sponsor_refusedWithoutEnoughDeposit() public {
        SessionKeyAccount account = _unfundedAccount();
        vm.prank(paymasterOwner);
        paymaster.withdrawTo(payable(paymasterOwner), PAYMASTER_DEPOSIT);
        _handleExpectRevert(
            _sponsoredOp(address(account), "", _mintCall(address(account))),
            abi.encodeWithSelector(
                IEntryPoint.FailedOp.selector, uint256(0), "AA31 paymaster deposit too low"
            )
        );
    }

    /// Gas of one sponsored owner mint from an account that already exists, printed with -vv.
    function test_gas_sponsoredMint() public {
        SessionKeyAccount account = _unfundedAccount();
        PackedUserOperation[] memory ops =
            _one(_sponsoredOp(address(account), "", _mintCall(address(account))));
        vm.prank(bundler, bundler);
        uint256 before = gasleft();
        entryPoint.handleOps(ops, beneficiary);
        uint256 gasUsed = before - gasleft();
        console.log("handleOps gas (sponsored mint)", gasUsed);
        vm.assertEq(_balance(account), 1, "item minted");
    }
}

/// @notice Every way an approval can be wrong. A wrong signature is never a revert in the
/// paymaster: it returns SIG_VALIDATION_FAILED and the EntryPoint refuses the bundle with AA34.
contract SponsorPaymasterRefusalTest is SponsorPaymasterTestBase {
    SessionKeyAccount internal account;

    function setUp() public override {
        super.setUp();
        account = _unfundedAccount();
    }

    function test_refuse_wrongSigner() public {
        _handleExpectRevert(
            _mintApprovedBy(account, paymaster, strangerKey, VALID_UNTIL, VALID_AFTER), _aa34()
        );
        vm.assertEq(_balance(account), 0, "nothing minted");
    }

    /// The signer's raw signature over getHash, without the EIP-191 prefix, is refused.
    function test_refuse_signatureWithoutPersonalPrefix() public {
        PackedUserOperation memory op = _op(address(account), "", _mintCall(address(account)));
        op.paymasterAndData = _static(address(paymaster));
        bytes memory raw = _sig(sponsorKey, paymaster.getHash(op, VALID_UNTIL, VALID_AFTER));
        op.paymasterAndData =
            abi.encodePacked(_static(address(paymaster)), VALID_UNTIL, VALID_AFTER, raw);
        _handleExpectRevert(_signPersonalAsIs(op, ownerKey), _aa34());
    }

    function test_refuse_expired() public {
        vm.warp(NOW + 2 hours);
        _handleExpectRevert(
            _mintApprovedBy(account, paymaster, sponsorKey, NOW + 1 hours, NOW - 1), _aa32()
        );
    }

    function test_refuse_notYetValid() public {
        _handleExpectRevert(
            _mintApprovedBy(account, paymaster, sponsorKey, NOW + 1 hours, NOW + 10 minutes),
            _aa32()
        );
    }

    /// EntryPoint v0.8 accepts `validAfter < block.timestamp <= validUntil`.
    function test_window_boundariesAreExclusiveAfterInclusiveUntil() public {
        uint48 validAfter = NOW + 100;
        uint48 validUntil = NOW + 200;

        vm.warp(validAfter);
        _handleExpectRevert(
            _mintApprovedBy(account, paymaster, sponsorKey, validUntil, validAfter), _aa32()
        );

        vm.warp(validAfter + 1);
        _handleSponsored(_mintApprovedBy(account, paymaster, sponsorKey, validUntil, validAfter));

        vm.warp(validUntil);
        _handleSponsored(_mintApprovedBy(account, paymaster, sponsorKey, validUntil, validAfter));

        vm.warp(validUntil + 1);
        _handleExpectRevert(
            _mintApprovedBy(account, paymaster, sponsorKey, validUntil, validAfter), _aa32()
        );
        vm.assertEq(_balance(account), 2, "two mints inside the window");
    }

    /// A validUntil of 0 means no expiry (EntryPoint v0.8 reads it as type(uint48).max).
    function test_window_zeroValidUntilNeverExpires() public {
        vm.warp(NOW + 3650 days);
        _handleSponsored(_mintApprovedBy(account, paymaster, sponsorKey, 0, 0));
        vm.assertEq(_balance(account), 1, "item minted");
    }

    /// An approval made on chain 1 is worthless on this chain, and works on chain 1.
    function test_refuse_approvalForAnotherChain() public {
        PackedUserOperation memory op = _op(address(account), "", _mintCall(address(account)));
        vm.chainId(1);
        _sponsor(op, paymaster, sponsorKey, VALID_UNTIL, VALID_AFTER);
        vm.chainId(LOCAL_CHAIN_ID);
        _handleExpectRevert(_signPersonalAsIs(op, ownerKey), _aa34());

        // Control: on the chain it was made for, the same approval is good.
        vm.chainId(1);
        _handleSponsored(_signPersonalAsIs(op, ownerKey));
        vm.assertEq(_balance(account), 1, "minted on chain 1");
    }

    /// Two paymasters trusting the same signer: an approval for A does not work with B.
    function test_refuse_approvalForAnotherPaymaster() public {
        SponsorPaymaster other = _newPaymaster();
        vm.label(address(other), "OtherSponsorPaymaster");
        PackedUserOperation memory op = _op(address(account), "", _mintCall(address(account)));
        bytes memory forA = _approval(op, paymaster, sponsorKey, VALID_UNTIL, VALID_AFTER);

        op.paymasterAndData =
            abi.encodePacked(_static(address(other)), VALID_UNTIL, VALID_AFTER, forA);
        _handleExpectRevert(_signPersonalAsIs(op, ownerKey), _aa34());

        // Control: the same approval with A itself is good.
        op.paymasterAndData =
            abi.encodePacked(_static(address(paymaster)), VALID_UNTIL, VALID_AFTER, forA);
        _handleSponsored(_signPersonalAsIs(op, ownerKey));
        vm.assertEq(_balance(account), 1, "minted through A");
    }

    function test_refuse_callDataChangedAfterApproval() public {
        PackedUserOperation memory op = _op(address(account), "", _mintCall(address(account)));
        _sponsor(op, paymaster, sponsorKey, VALID_UNTIL, VALID_AFTER);
        op.callData = _execute(address(items), 0, _mintData(address(account), 1000));
        _handleExpectRevert(_signPersonalAsIs(op, ownerKey), _aa34());
    }

    function test_refuse_gasFeesRaisedAfterApproval() public {
        PackedUserOperation memory op = _op(address(account), "", _mintCall(address(account)));
        _sponsor(op, paymaster, sponsorKey, VALID_UNTIL, VALID_AFTER);
        op.gasFees = bytes32((uint256(MAX_PRIORITY_FEE) << 128) | (MAX_FEE + 1));
        _handleExpectRevert(_signPersonalAsIs(op, ownerKey), _aa34());
    }

    function test_refuse_windowStretchedAfterApproval() public {
        PackedUserOperation memory op = _op(address(account), "", _mintCall(address(account)));
        bytes memory signature = _approval(op, paymaster, sponsorKey, VALID_UNTIL, VALID_AFTER);
        op.paymasterAndData = abi.encodePacked(
            _static(address(paymaster)), VALID_UNTIL + 1 days, VALID_AFTER, signature
        );
        _handleExpectRevert(_signPersonalAsIs(op, ownerKey), _aa34());
    }

    function test_refuse_paymasterGasLimitRaisedAfterApproval() public {
        PackedUserOperation memory op = _op(address(account), "", _mintCall(address(account)));
        bytes memory signature = _approval(op, paymaster, sponsorKey, VALID_UNTIL, VALID_AFTER);
        op.paymasterAndData = abi.encodePacked(
            address(paymaster),
            PM_VERIFICATION_GAS_LIMIT + 1,
            PM_POST_OP_GAS_LIMIT,
            VALID_UNTIL,
            VALID_AFTER,
            signature
        );
        _handleExpectRevert(_signPersonalAsIs(op, ownerKey), _aa34());
    }

    function test_refuse_signatureWithOneBitFlipped() public {
        PackedUserOperation memory op =
            _mintApprovedBy(account, paymaster, sponsorKey, VALID_UNTIL, VALID_AFTER);
        op.paymasterAndData[70] ^= 0x01; // inside r
        _handleExpectRevert(_signPersonalAsIs(op, ownerKey), _aa34());
    }

    /// A signature that does not recover at all (v = 0) is a failure, not a revert.
    function test_refuse_unrecoverableSignatureIsNotARevert() public {
        PackedUserOperation memory op =
            _mintApprovedBy(account, paymaster, sponsorKey, VALID_UNTIL, VALID_AFTER);
        op.paymasterAndData[128] = 0x00; // v
        (bytes memory context, uint256 validationData) = _validate(paymaster, op);
        vm.assertEq(context.length, 0, "empty context");
        vm.assertEq(_aggregator(validationData), 1, "SIG_VALIDATION_FAILED");
        _handleExpectRevert(_signPersonalAsIs(op, ownerKey), _aa34());
    }

    function test_refuse_paymasterAndDataOneByteShort() public {
        PackedUserOperation memory op =
            _mintApprovedBy(account, paymaster, sponsorKey, VALID_UNTIL, VALID_AFTER);
        bytes memory full = op.paymasterAndData;
        bytes memory short = new bytes(128);
        for (uint256 i = 0; i < 128; i++) {
            short[i] = full[i];
        }
        op.paymasterAndData = short;
        _handleExpectRevert(_signPersonalAsIs(op, ownerKey), _aa33(_badLength(128)));
    }

    function test_refuse_paymasterAndDataWithTrailingByte() public {
        PackedUserOperation memory op =
            _mintApprovedBy(account, paymaster, sponsorKey, VALID_UNTIL, VALID_AFTER);
        op.paymasterAndData = bytes.concat(op.paymasterAndData, hex"00");
        _handleExpectRevert(_signPersonalAsIs(op, ownerKey), _aa33(_badLength(130)));
    }

    function test_refuse_paymasterAndDataWithoutData() public {
        PackedUserOperation memory op = _op(address(account), "", _mintCall(address(account)));
        op.paymasterAndData = _static(address(paymaster));
        _handleExpectRevert(_signPersonalAsIs(op, ownerKey), _aa33(_badLength(52)));
    }

    function testFuzz_refuse_anyOtherPaymasterDataLength(uint256 dataLength) public {
        dataLength = bound(dataLength, 0, 400);
        vm.assume(dataLength != 77);
        PackedUserOperation memory op = _op(address(account), "", _mintCall(address(account)));
        op.paymasterAndData = bytes.concat(_static(address(paymaster)), new bytes(dataLength));
        _handleExpectRevert(_signPersonalAsIs(op, ownerKey), _aa33(_badLength(52 + dataLength)));
    }

    /// The window comes back packed with the failure, so the EntryPoint checks the signature
    /// first and reports AA34 even for an expired, wrongly signed approval.
    function test_validation_badSignaturePacksFailureWithWindow() public {
        PackedUserOperation memory op =
            _mintApprovedBy(account, paymaster, strangerKey, VALID_UNTIL, VALID_AFTER);
        (bytes memory context, uint256 validationData) = _validate(paymaster, op);
        vm.assertEq(context.length, 0, "empty context");
        vm.assertEq(
            validationData,
            1 | (uint256(VALID_UNTIL) << 160) | (uint256(VALID_AFTER) << 208),
            "failure and window"
        );

        vm.warp(VALID_UNTIL + 1);
        _handleExpectRevert(op, _aa34());
    }

    function test_validation_goodSignaturePacksWindow() public {
        PackedUserOperation memory op =
            _mintApprovedBy(account, paymaster, sponsorKey, VALID_UNTIL, VALID_AFTER);
        (bytes memory context, uint256 validationData) = _validate(paymaster, op);
        vm.assertEq(context.length, 0, "empty context");
        vm.assertEq(
            validationData,
            (uint256(VALID_UNTIL) << 160) | (uint256(VALID_AFTER) << 208),
            "success and window"
        );
    }

    function test_validation_onlyTheEntryPoint() public {
        PackedUserOperation memory op =
            _mintApprovedBy(account, paymaster, sponsorKey, VALID_UNTIL, VALID_AFTER);
        vm.prank(stranger);
        vm.expectRevert(bytes("Sender not EntryPoint"));
        paymaster.validatePaymasterUserOp(op, bytes32(0), 0);

        vm.prank(stranger);
        vm.expectRevert(bytes("Sender not EntryPoint"));
        paymaster.postOp(IPaymaster.PostOpMode.opSucceeded, "", 0, 0);
    }
}

/// @notice Random tampering with one signed field after the approval always fails the
/// paymaster's validation, while the untouched op passes it.
contract SponsorPaymasterTamperFuzzTest is SponsorPaymasterTestBase {
    uint256 internal constant FIELDS = 13;

    function testFuzz_tamperingWithAnySignedFieldFailsValidation(
        uint256 field,
        uint256 delta,
        bytes1 extraByte
    ) public {
        field = bound(field, 0, FIELDS - 1);
        delta = bound(delta, 1, type(uint256).max);
        SessionKeyAccount account = _unfundedAccount();
        PackedUserOperation memory op =
            _mintApprovedBy(account, paymaster, sponsorKey, VALID_UNTIL, VALID_AFTER);
        (, uint256 validationData) = _validate(paymaster, op);
        vm.assertEq(_aggregator(validationData), 0, "the untouched op is approved");

        SponsorPaymaster usedWith = _tamper(op, field, delta, extraByte);

        (, validationData) = _validate(usedWith, op);
        vm.assertEq(_aggregator(validationData), 1, "the tampered op is refused");
    }

    /// @dev Changes one thing that the approval covers, and returns the paymaster the op now
    /// goes to; `delta` is never 0.
    function _tamper(PackedUserOperation memory op, uint256 field, uint256 delta, bytes1 extra)
        internal
        returns (SponsorPaymaster usedWith)
    {
        usedWith = paymaster;
        bytes memory pmData = op.paymasterAndData;
        if (field == 0) {
            op.sender = address(uint160(op.sender) ^ uint160(bound(delta, 1, type(uint160).max)));
        } else if (field == 1) {
            op.nonce ^= delta;
        } else if (field == 2) {
            op.initCode = bytes.concat(op.initCode, extra);
        } else if (field == 3) {
            op.callData = bytes.concat(op.callData, extra);
        } else if (field == 4) {
            op.accountGasLimits ^= bytes32(delta);
        } else if (field == 5) {
            _xor(pmData, 20, 16, delta); // paymaster verification gas limit
        } else if (field == 6) {
            _xor(pmData, 36, 16, delta); // postOp gas limit
        } else if (field == 7) {
            op.preVerificationGas ^= delta;
        } else if (field == 8) {
            op.gasFees ^= bytes32(delta);
        } else if (field == 9) {
            _xor(pmData, 52, 6, delta); // validUntil
        } else if (field == 10) {
            _xor(pmData, 58, 6, delta); // validAfter
        } else if (field == 11) {
            // the chain the approval is used on
            vm.chainId(LOCAL_CHAIN_ID + bound(delta, 1, type(uint32).max));
        } else {
            // the paymaster the approval is used with: same signer, other address
            usedWith = _newPaymaster();
            bytes20 other = bytes20(address(usedWith));
            for (uint256 i = 0; i < 20; i++) {
                pmData[i] = other[i];
            }
        }
    }

    /// @dev XORs `width` bytes of `data` at `offset` with the low bytes of `delta`, making
    /// sure at least one bit flips.
    function _xor(bytes memory data, uint256 offset, uint256 width, uint256 delta) internal pure {
        uint256 mask = bound(delta, 1, (uint256(1) << (8 * width)) - 1);
        for (uint256 i = 0; i < width; i++) {
            // casting to 'uint8' is safe: the mask keeps only the byte being flipped
            // forge-lint: disable-next-line(unsafe-typecast)
            data[offset + width - 1 - i] ^= bytes1(uint8((mask >> (8 * i)) & 0xff));
        }
    }
}

/// @notice The hash layout is an interface with the relayer, which computes it off-chain:
/// pin it field by field.
contract SponsorPaymasterHashTest is SponsorPaymasterTestBase {
    function _documentedHash(
        PackedUserOperation memory op,
        uint48 validUntil,
        uint48 validAfter,
        uint256 chainId,
        address pm
    ) internal pure returns (bytes32) {
        bytes memory pmData = op.paymasterAndData;
        bytes32 pmGasLimits;
        assembly ("memory-safe") {
            pmGasLimits := mload(add(pmData, 52)) // bytes 20..52 of the data
        }
        return keccak256(
            abi.encode(
                keccak256("latchkey.SponsorPaymaster.v1"),
                op.sender,
                op.nonce,
                keccak256(op.initCode),
                keccak256(op.callData),
                op.accountGasLimits,
                pmGasLimits,
                op.preVerificationGas,
                op.gasFees,
                validUntil,
                validAfter,
                chainId,
                pm
            )
        );
    }

    function test_hash_matchesTheDocumentedLayout() public view {
        PackedUserOperation memory op = _op(
            factory.getAddress(_ethSigner(owner), 3),
            _initCode(owner, 3),
            _mintCall(address(0xCAFE))
        );
        op.paymasterAndData = _static(address(paymaster));
        bytes32 expected =
            _documentedHash(op, VALID_UNTIL, VALID_AFTER, LOCAL_CHAIN_ID, address(paymaster));
        vm.assertEq(paymaster.getHash(op, VALID_UNTIL, VALID_AFTER), expected, "layout");
        vm.assertEq(
            paymaster.SPONSOR_DOMAIN(), keccak256("latchkey.SponsorPaymaster.v1"), "domain tag"
        );
    }

    /// Neither the approval in paymasterAndData nor the account's signature is hashed, so the
    /// relayer may ask for the hash with placeholder data.
    function testFuzz_hash_ignoresSignaturesAndPlaceholderData(
        bytes memory placeholder,
        bytes memory accountSignature
    ) public view {
        PackedUserOperation memory op = _op(address(0xACC), "", _mintCall(address(0xACC)));
        op.paymasterAndData = _static(address(paymaster));
        bytes32 bare = paymaster.getHash(op, VALID_UNTIL, VALID_AFTER);

        op.paymasterAndData = bytes.concat(_static(address(paymaster)), placeholder);
        op.signature = accountSignature;
        vm.assertEq(paymaster.getHash(op, VALID_UNTIL, VALID_AFTER), bare, "same hash");
    }

    function test_hash_refusesPaymasterAndDataWithoutGasLimits() public {
        PackedUserOperation memory op = _op(address(0xACC), "", "");
        op.paymasterAndData = abi.encodePacked(address(paymaster));
        vm.expectRevert(_badLength(20));
        paymaster.getHash(op, VALID_UNTIL, VALID_AFTER);
    }

    function testFuzz_parse_roundTrips(uint48 validUntil, uint48 validAfter, bytes32 r, bytes32 s)
        public
        view
    {
        bytes memory signature = abi.encodePacked(r, s, uint8(27));
        (uint48 until, uint48 after_, bytes memory parsed) = paymaster.parsePaymasterData(
            abi.encodePacked(_static(address(paymaster)), validUntil, validAfter, signature)
        );
        vm.assertEq(until, validUntil, "validUntil");
        vm.assertEq(after_, validAfter, "validAfter");
        vm.assertEq(keccak256(parsed), keccak256(signature), "signature");
    }

    function test_parse_refusesWrongLength() public {
        vm.expectRevert(_badLength(128));
        paymaster.parsePaymasterData(new bytes(128));
    }
}

/// @notice The owner's side: the signer, the deposit and the stake. BasePaymaster supplies
/// deposit, withdrawTo, addStake, unlockStake and withdrawStake.
contract SponsorPaymasterAdminTest is SponsorPaymasterTestBase {
    function test_constructor_setsOwnerAndSigner() public view {
        vm.assertEq(paymaster.owner(), paymasterOwner, "owner is the named owner");
        vm.assertEq(paymaster.signer(), sponsor, "signer");
        vm.assertEq(address(paymaster.entryPoint()), address(entryPoint), "entryPoint");
    }

    function test_constructor_refusesZeroSignerOrOwner() public {
        vm.expectRevert(abi.encodeWithSelector(SponsorPaymaster.InvalidSigner.selector, address(0)));
        new SponsorPaymaster(entryPoint, paymasterOwner, address(0));

        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableInvalidOwner.selector, address(0)));
        new SponsorPaymaster(entryPoint, address(0), sponsor);
    }

    function test_constructor_refusesANonEntryPoint() public {
        vm.expectRevert(bytes("IEntryPoint interface mismatch"));
        new SponsorPaymaster(IEntryPoint(address(items)), paymasterOwner, sponsor);
    }

    function test_setSigner_ownerRotatesTheSigner() public {
        SessionKeyAccount account = _unfundedAccount();
        uint256 newSignerKey = 0x5B0251;
        address newSigner = vm.addr(newSignerKey);

        vm.expectEmit(true, true, false, true, address(paymaster));
        emit SponsorPaymaster.SignerChanged(sponsor, newSigner);
        vm.prank(paymasterOwner);
        paymaster.setSigner(newSigner);
        vm.assertEq(paymaster.signer(), newSigner, "signer rotated");

        // The old signer's approvals stop at once, even with their window still open.
        _handleExpectRevert(
            _mintApprovedBy(account, paymaster, sponsorKey, VALID_UNTIL, VALID_AFTER), _aa34()
        );
        _handleSponsored(
            _mintApprovedBy(account, paymaster, newSignerKey, VALID_UNTIL, VALID_AFTER)
        );
        vm.assertEq(_balance(account), 1, "new signer's approval works");
    }

    function test_setSigner_refusesZero() public {
        vm.prank(paymasterOwner);
        vm.expectRevert(abi.encodeWithSelector(SponsorPaymaster.InvalidSigner.selector, address(0)));
        paymaster.setSigner(address(0));
    }

    function test_onlyOwner_strangerRefused() public {
        vm.startPrank(stranger);
        vm.expectRevert(_notOwner(stranger));
        paymaster.setSigner(stranger);
        vm.expectRevert(_notOwner(stranger));
        paymaster.withdrawTo(payable(stranger), 1);
        vm.deal(stranger, 1 ether);
        vm.expectRevert(_notOwner(stranger));
        paymaster.addStake{value: 1 ether}(1 days);
        vm.expectRevert(_notOwner(stranger));
        paymaster.unlockStake();
        vm.expectRevert(_notOwner(stranger));
        paymaster.withdrawStake(payable(stranger));
        vm.stopPrank();

        vm.assertEq(paymaster.signer(), sponsor, "signer unchanged");
        vm.assertEq(paymaster.getDeposit(), PAYMASTER_DEPOSIT, "deposit unchanged");
    }

    /// The deployer does not keep control: ownership went to `paymasterOwner`.
    function test_onlyOwner_deployerRefused() public {
        vm.expectRevert(_notOwner(address(this)));
        paymaster.setSigner(stranger);
    }

    function test_deposit_anyoneDepositsOwnerWithdraws() public {
        vm.deal(stranger, 1 ether);
        vm.prank(stranger);
        paymaster.deposit{value: 0.5 ether}();
        vm.assertEq(paymaster.getDeposit(), PAYMASTER_DEPOSIT + 0.5 ether, "deposit grew");
        vm.assertEq(
            entryPoint.balanceOf(address(paymaster)),
            paymaster.getDeposit(),
            "the EntryPoint agrees"
        );

        vm.prank(paymasterOwner);
        paymaster.withdrawTo(recipient, 0.7 ether);
        vm.assertEq(recipient.balance, 0.7 ether, "recipient paid");
        vm.assertEq(paymaster.getDeposit(), PAYMASTER_DEPOSIT - 0.2 ether, "deposit shrank");
    }

    function test_stake_ownerStakesUnlocksAndWithdraws() public {
        vm.deal(paymasterOwner, 2 ether);
        vm.prank(paymasterOwner);
        paymaster.addStake{value: 2 ether}(1 days);
        IStakeManager.DepositInfo memory info = entryPoint.getDepositInfo(address(paymaster));
        vm.assertTrue(info.staked, "staked");
        vm.assertEq(info.stake, 2 ether, "stake");
        vm.assertEq(info.unstakeDelaySec, 1 days, "delay");
        vm.assertEq(info.deposit, PAYMASTER_DEPOSIT, "deposit kept apart");

        vm.prank(paymasterOwner);
        paymaster.unlockStake();
        vm.warp(NOW + 1 days);
        vm.prank(paymasterOwner);
        paymaster.withdrawStake(recipient);
        vm.assertEq(recipient.balance, 2 ether, "stake withdrawn");
        vm.assertEq(entryPoint.getDepositInfo(address(paymaster)).stake, 0, "no stake left");
    }
}
