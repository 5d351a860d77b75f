// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {GameItems} from "../../src/GameItems.sol";
import {SessionKeyAccount} from "../../src/SessionKeyAccount.sol";
import {SessionKeyAccountFactory} from "../../src/SessionKeyAccountFactory.sol";
import {TestBase, Vm} from "./TestBase.sol";
import {BaseAccount} from "@account-abstraction/contracts/core/BaseAccount.sol";
import {IEntryPoint} from "@account-abstraction/contracts/interfaces/IEntryPoint.sol";
import {
    PackedUserOperation
} from "@account-abstraction/contracts/interfaces/PackedUserOperation.sol";

/// @notice The world every account test runs in: the canonical EntryPoint v0.8 (deployed from
/// its npm artifact through the CREATE2 deployer, at its mainnet address), the factory, two
/// GameItems contracts, and the helpers that build, sign and bundle user operations.
abstract contract AccountTestBase is TestBase {
    // ---------------------------------------------------------------------------------------
    // Canonical deployment of EntryPoint v0.8
    // ---------------------------------------------------------------------------------------

    address internal constant CREATE2_DEPLOYER = 0x4e59b44847b379578588920cA78FbF26c0B4956C;
    bytes internal constant CREATE2_DEPLOYER_CODE =
        hex"7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe03601600081602082378035828234f58015156039578182fd5b8082525050506014600cf3";
    bytes32 internal constant ENTRY_POINT_SALT =
        0x0a59dbff790c23c976a548690c27297883cc66b4c67024f9117b0238995e35e9;
    address internal constant ENTRY_POINT_ADDRESS = 0x4337084D9E255Ff0702461CF8895CE9E3b5Ff108;
    string internal constant ENTRY_POINT_ARTIFACT =
        "node_modules/@account-abstraction/contracts/artifacts/EntryPoint.json";

    // ---------------------------------------------------------------------------------------
    // Defaults
    // ---------------------------------------------------------------------------------------

    /// @dev A realistic clock; tests warp relative to it.
    uint48 internal constant NOW = 1_750_000_000;
    uint128 internal constant VERIFICATION_GAS_LIMIT = 1_000_000;
    uint128 internal constant CALL_GAS_LIMIT = 500_000;
    uint256 internal constant PRE_VERIFICATION_GAS = 50_000;
    uint128 internal constant MAX_PRIORITY_FEE = 1 gwei;
    uint128 internal constant MAX_FEE = 1 gwei;
    uint256 internal constant ACCOUNT_FUNDING = 10 ether;
    /// @dev What the account charges a session key's gas budget for one default op: its worst
    /// case, (verification + call + preVerification gas) * maxFeePerGas.
    uint128 internal constant OP_MAX_GAS_COST =
        uint128((VERIFICATION_GAS_LIMIT + CALL_GAS_LIMIT + PRE_VERIFICATION_GAS) * MAX_FEE);
    /// @dev Gas budget of the default permissions: hundreds of default ops.
    uint128 internal constant DEFAULT_GAS_BUDGET = 1 ether;
    uint256 internal constant ITEM_ID = 7;

    uint256 internal constant SECP256K1_N =
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    IEntryPoint internal entryPoint;
    SessionKeyAccountFactory internal factory;
    GameItems internal items;
    /// @dev A second GameItems that no default permission covers: the "wrong target".
    GameItems internal otherItems;

    uint256 internal ownerKey = 0xA11CE;
    address internal owner;
    uint256 internal sessionKey = 0x5E5510;
    address internal session;
    uint256 internal secondSessionKey = 0x5E5520;
    address internal secondSession;
    uint256 internal strangerKey = 0xBAD;
    address internal stranger;

    address payable internal bundler = payable(address(0xB0B1E5));
    address payable internal beneficiary = payable(address(0xBE7EF1C1A7));
    /// @dev A plain EOA that session keys may pay (selector 0x00000000).
    address payable internal recipient = payable(address(0x7EC1E17));

    function setUp() public virtual {
        vm.warp(NOW);
        entryPoint = _deployCanonicalEntryPoint();
        factory = new SessionKeyAccountFactory(entryPoint);
        items = new GameItems();
        otherItems = new GameItems();

        owner = vm.addr(ownerKey);
        session = vm.addr(sessionKey);
        secondSession = vm.addr(secondSessionKey);
        stranger = vm.addr(strangerKey);
        vm.deal(bundler, 1 ether);

        vm.label(address(entryPoint), "EntryPoint");
        vm.label(address(factory), "SessionKeyAccountFactory");
        vm.label(address(items), "GameItems");
        vm.label(address(otherItems), "OtherGameItems");
        vm.label(owner, "owner");
        vm.label(session, "session");
        vm.label(secondSession, "secondSession");
        vm.label(stranger, "stranger");
        vm.label(bundler, "bundler");
        vm.label(beneficiary, "beneficiary");
        vm.label(recipient, "recipient");
    }

    function _deployCanonicalEntryPoint() internal returns (IEntryPoint) {
        if (CREATE2_DEPLOYER.code.length == 0) vm.etch(CREATE2_DEPLOYER, CREATE2_DEPLOYER_CODE);
        bytes memory code = vm.getCode(ENTRY_POINT_ARTIFACT);
        (bool ok, bytes memory deployed) =
            CREATE2_DEPLOYER.call(abi.encodePacked(ENTRY_POINT_SALT, code));
        vm.assertTrue(ok, "CREATE2 deployment of the EntryPoint failed");
        vm.assertEq(
            address(bytes20(deployed)), ENTRY_POINT_ADDRESS, "EntryPoint not at canonical address"
        );
        vm.assertGt(ENTRY_POINT_ADDRESS.code.length, 0, "EntryPoint has no code");
        return IEntryPoint(ENTRY_POINT_ADDRESS);
    }

    // ---------------------------------------------------------------------------------------
    // Permissions
    // ---------------------------------------------------------------------------------------

    function _allow(address target, bytes4 selector)
        internal
        pure
        returns (SessionKeyAccount.CallPermission memory)
    {
        return SessionKeyAccount.CallPermission({
            target: target, selector: selector, anySelector: false
        });
    }

    function _allowAny(address target)
        internal
        pure
        returns (SessionKeyAccount.CallPermission memory)
    {
        return SessionKeyAccount.CallPermission({
            target: target, selector: bytes4(0), anySelector: true
        });
    }

    function _list(SessionKeyAccount.CallPermission memory a)
        internal
        pure
        returns (SessionKeyAccount.CallPermission[] memory calls)
    {
        calls = new SessionKeyAccount.CallPermission[](1);
        calls[0] = a;
    }

    function _list(
        SessionKeyAccount.CallPermission memory a,
        SessionKeyAccount.CallPermission memory b
    ) internal pure returns (SessionKeyAccount.CallPermission[] memory calls) {
        calls = new SessionKeyAccount.CallPermission[](2);
        calls[0] = a;
        calls[1] = b;
    }

    function _permissions(
        uint32 callLimit,
        uint128 valuePerCallLimit,
        uint128 valueBudget,
        SessionKeyAccount.CallPermission[] memory calls
    ) internal pure returns (SessionKeyAccount.SessionPermissions memory) {
        return _permissions(callLimit, valuePerCallLimit, valueBudget, DEFAULT_GAS_BUDGET, calls);
    }

    function _permissions(
        uint32 callLimit,
        uint128 valuePerCallLimit,
        uint128 valueBudget,
        uint128 gasBudget,
        SessionKeyAccount.CallPermission[] memory calls
    ) internal pure returns (SessionKeyAccount.SessionPermissions memory) {
        return SessionKeyAccount.SessionPermissions({
            callLimit: callLimit,
            valuePerCallLimit: valuePerCallLimit,
            valueBudget: valueBudget,
            gasBudget: gasBudget,
            calls: calls
        });
    }

    /// @dev The everyday game permission: mint on `items`, `callLimit` times, no value.
    function _mintPermissions(uint32 callLimit)
        internal
        view
        returns (SessionKeyAccount.SessionPermissions memory)
    {
        return _permissions(callLimit, 0, 0, _list(_allow(address(items), GameItems.mint.selector)));
    }

    // ---------------------------------------------------------------------------------------
    // Call data
    // ---------------------------------------------------------------------------------------

    function _initCode(address owner_, uint256 salt) internal view returns (bytes memory) {
        return abi.encodePacked(
            address(factory), abi.encodeCall(SessionKeyAccountFactory.createAccount, (owner_, salt))
        );
    }

    function _execute(address target, uint256 value, bytes memory data)
        internal
        pure
        returns (bytes memory)
    {
        return abi.encodeCall(BaseAccount.execute, (target, value, data));
    }

    function _executeBatch(BaseAccount.Call[] memory calls) internal pure returns (bytes memory) {
        return abi.encodeCall(BaseAccount.executeBatch, (calls));
    }

    function _registerData(
        address key,
        uint48 validAfter,
        uint48 validUntil,
        SessionKeyAccount.SessionPermissions memory permissions
    ) internal pure returns (bytes memory) {
        return abi.encodeCall(
            SessionKeyAccount.registerSessionKey, (key, validAfter, validUntil, permissions)
        );
    }

    /// @dev `execute(account, 0, registerSessionKey(...))`: what an owner op sends.
    function _registerCallData(
        address account,
        address key,
        uint48 validAfter,
        uint48 validUntil,
        SessionKeyAccount.SessionPermissions memory permissions
    ) internal pure returns (bytes memory) {
        return _execute(account, 0, _registerData(key, validAfter, validUntil, permissions));
    }

    function _mintData(address to, uint256 amount) internal pure returns (bytes memory) {
        return abi.encodeCall(GameItems.mint, (to, ITEM_ID, amount));
    }

    function _buyData(uint256 amount) internal pure returns (bytes memory) {
        return abi.encodeCall(GameItems.buy, (ITEM_ID, amount));
    }

    function _mintCall(address account) internal view returns (bytes memory) {
        return _execute(address(items), 0, _mintData(account, 1));
    }

    function _call(address target, uint256 value, bytes memory data)
        internal
        pure
        returns (BaseAccount.Call memory)
    {
        return BaseAccount.Call({target: target, value: value, data: data});
    }

    /// @dev A batch of `n` calls, each minting one item to `account`.
    function _mintBatch(address account, uint256 n)
        internal
        view
        returns (BaseAccount.Call[] memory calls)
    {
        calls = new BaseAccount.Call[](n);
        for (uint256 i = 0; i < n; i++) {
            calls[i] = _call(address(items), 0, _mintData(account, 1));
        }
    }

    // ---------------------------------------------------------------------------------------
    // User operations
    // ---------------------------------------------------------------------------------------

    function _op(address sender, bytes memory initCode, bytes memory callData)
        internal
        view
        returns (PackedUserOperation memory op)
    {
        op.sender = sender;
        op.nonce = entryPoint.getNonce(sender, 0);
        op.initCode = initCode;
        op.callData = callData;
        op.accountGasLimits = bytes32((uint256(VERIFICATION_GAS_LIMIT) << 128) | CALL_GAS_LIMIT);
        op.preVerificationGas = PRE_VERIFICATION_GAS;
        op.gasFees = bytes32((uint256(MAX_PRIORITY_FEE) << 128) | MAX_FEE);
    }

    function _personalDigest(bytes32 userOpHash) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked("\x19Ethereum Signed Message:\n32", userOpHash));
    }

    function _sig(uint256 privateKey, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(privateKey, digest);
        return abi.encodePacked(r, s, v);
    }

    /// @dev The EntryPoint nonce key an op signed by `signer` uses: a session key uses the
    /// first lane of its own family (its address in the top 160 bits); the owner, and whoever
    /// signs a counterfactual account's first op, uses key 0.
    function _nonceKeyFor(address sender, address signer) internal view returns (uint192) {
        if (sender.code.length == 0) return 0;
        if (SessionKeyAccount(payable(sender)).owner() == signer) return 0;
        return _lane(signer, 0);
    }

    /// @dev Lane `subLane` of the nonce keys that belong to session key `key`.
    function _lane(address key, uint32 subLane) internal pure returns (uint192) {
        return (uint192(uint160(key)) << 32) | subLane;
    }

    /// @dev Puts `op` in the signer's nonce lane, at that lane's next sequence number.
    function _useNonceLaneOf(PackedUserOperation memory op, uint256 privateKey) internal view {
        op.nonce = entryPoint.getNonce(op.sender, _nonceKeyFor(op.sender, vm.addr(privateKey)));
    }

    /// @dev EIP-191 personal-sign over the userOpHash: what `signMessage({raw: hash})` makes.
    /// The op moves to the signer's nonce lane first.
    function _signPersonal(PackedUserOperation memory op, uint256 privateKey)
        internal
        view
        returns (PackedUserOperation memory)
    {
        _useNonceLaneOf(op, privateKey);
        return _signPersonalAsIs(op, privateKey);
    }

    /// @dev As `_signPersonal`, keeping the op's nonce as it is.
    function _signPersonalAsIs(PackedUserOperation memory op, uint256 privateKey)
        internal
        view
        returns (PackedUserOperation memory)
    {
        op.signature = _sig(privateKey, _personalDigest(entryPoint.getUserOpHash(op)));
        return op;
    }

    /// @dev A signature over the raw EIP-712 userOpHash, no prefix, in the signer's nonce lane.
    function _signRaw(PackedUserOperation memory op, uint256 privateKey)
        internal
        view
        returns (PackedUserOperation memory)
    {
        _useNonceLaneOf(op, privateKey);
        op.signature = _sig(privateKey, entryPoint.getUserOpHash(op));
        return op;
    }

    function _one(PackedUserOperation memory op)
        internal
        pure
        returns (PackedUserOperation[] memory ops)
    {
        ops = new PackedUserOperation[](1);
        ops[0] = op;
    }

    /// @dev Bundles `op` and returns whether its execution phase succeeded (validation failures
    /// revert handleOps, so they surface as a revert here).
    function _handle(PackedUserOperation memory op) internal returns (bool success) {
        return _handle(op, entryPoint.getUserOpHash(op));
    }

    function _handle(PackedUserOperation memory op, bytes32 userOpHash)
        internal
        returns (bool success)
    {
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
                (, success,,) = abi.decode(logs[i].data, (uint256, bool, uint256, uint256));
                return success;
            }
        }
        revert("no UserOperationEvent for the op");
    }

    /// @dev Bundles `op` and requires validation and execution to succeed.
    function _handleOk(PackedUserOperation memory op) internal {
        vm.assertTrue(_handle(op), "user operation execution failed");
    }

    /// @dev As `_handleOk`, with the hash computed beforehand, so that nothing but handleOps runs
    /// between a `vm.expectEmit` and the bundle.
    function _handleOk(PackedUserOperation memory op, bytes32 userOpHash) internal {
        vm.assertTrue(_handle(op, userOpHash), "user operation execution failed");
    }

    /// @dev Bundles `op` and expects handleOps to revert with exactly `revertData`.
    function _handleExpectRevert(PackedUserOperation memory op, bytes memory revertData) internal {
        PackedUserOperation[] memory ops = _one(op);
        vm.prank(bundler, bundler);
        vm.expectRevert(revertData);
        entryPoint.handleOps(ops, beneficiary);
    }

    /// @dev Bundles `op`, which passes validation, and expects its execution to revert with
    /// exactly `reason` (reported by the EntryPoint as UserOperationRevertReason).
    function _handleExpectExecutionRevert(PackedUserOperation memory op, bytes memory reason)
        internal
    {
        bytes32 userOpHash = entryPoint.getUserOpHash(op);
        vm.expectEmit(true, true, false, true, address(entryPoint));
        emit IEntryPoint.UserOperationRevertReason(userOpHash, op.sender, op.nonce, reason);
        vm.assertFalse(_handle(op, userOpHash), "user operation execution should have failed");
    }

    // ---------------------------------------------------------------------------------------
    // EntryPoint revert data
    // ---------------------------------------------------------------------------------------

    /// @dev validateUserOp reverted (a session key broke a rule).
    function _aa23(bytes memory inner) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(
            IEntryPoint.FailedOpWithRevert.selector, uint256(0), "AA23 reverted", inner
        );
    }

    function _aa22() internal pure returns (bytes memory) {
        return abi.encodeWithSelector(
            IEntryPoint.FailedOp.selector, uint256(0), "AA22 expired or not due"
        );
    }

    function _aa24() internal pure returns (bytes memory) {
        return
            abi.encodeWithSelector(
                IEntryPoint.FailedOp.selector, uint256(0), "AA24 signature error"
            );
    }

    // ---------------------------------------------------------------------------------------
    // Flows
    // ---------------------------------------------------------------------------------------

    /// @dev Funds the counterfactual account of (owner, salt) and deploys it through its first
    /// op's initCode, which carries `callData` (may be empty), signed by the owner.
    function _deploy(uint256 salt, bytes memory callData)
        internal
        returns (SessionKeyAccount account)
    {
        return _deployFor(ownerKey, salt, callData);
    }

    /// @dev As `_deploy`, for the owner with private key `ownerPrivateKey`.
    function _deployFor(uint256 ownerPrivateKey, uint256 salt, bytes memory callData)
        internal
        returns (SessionKeyAccount account)
    {
        address accountOwner = vm.addr(ownerPrivateKey);
        address predicted = factory.getAddress(accountOwner, salt);
        vm.deal(predicted, ACCOUNT_FUNDING);
        _handleOk(
            _signPersonal(_op(predicted, _initCode(accountOwner, salt), callData), ownerPrivateKey)
        );
        account = SessionKeyAccount(payable(predicted));
        vm.label(predicted, "account");
    }

    /// @dev Deploys the account and registers `key` in its first op.
    function _deployWithKey(
        address key,
        uint48 validAfter,
        uint48 validUntil,
        SessionKeyAccount.SessionPermissions memory permissions
    ) internal returns (SessionKeyAccount account) {
        address predicted = factory.getAddress(owner, 0);
        account = _deploy(0, _registerCallData(predicted, key, validAfter, validUntil, permissions));
    }

    /// @dev Deploys the account with `session` registered for a day, for `permissions`.
    function _deployWithSession(SessionKeyAccount.SessionPermissions memory permissions)
        internal
        returns (SessionKeyAccount)
    {
        return _deployWithKey(session, NOW - 1, NOW + 1 days, permissions);
    }

    /// @dev An op from `account` carrying `callData`, personal-signed by `privateKey`.
    function _opBy(SessionKeyAccount account, uint256 privateKey, bytes memory callData)
        internal
        view
        returns (PackedUserOperation memory)
    {
        return _signPersonal(_op(address(account), "", callData), privateKey);
    }

    /// @dev Runs an owner-signed op on `account` and requires it to succeed.
    function _ownerOp(SessionKeyAccount account, bytes memory callData) internal {
        _handleOk(_opBy(account, ownerKey, callData));
    }

    /// @dev Registers `key` through an owner-signed op.
    function _registerByOp(
        SessionKeyAccount account,
        address key,
        uint48 validAfter,
        uint48 validUntil,
        SessionKeyAccount.SessionPermissions memory permissions
    ) internal {
        _ownerOp(
            account, _registerCallData(address(account), key, validAfter, validUntil, permissions)
        );
    }

    /// @dev A session-key op minting one item to the account, which must succeed.
    function _sessionMint(SessionKeyAccount account, uint256 privateKey) internal {
        _handleOk(_opBy(account, privateKey, _mintCall(address(account))));
    }

    function _balance(SessionKeyAccount account) internal view returns (uint256) {
        return items.balanceOf(address(account), ITEM_ID);
    }

    function _callsUsed(SessionKeyAccount account, address key) internal view returns (uint256) {
        return account.getSessionKey(key).callsUsed;
    }

    function _privateKey(uint256 seed) internal pure returns (uint256) {
        return bound(seed, 1, SECP256K1_N - 1);
    }
}
