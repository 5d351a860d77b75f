// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {GameGold} from "../src/GameGold.sol";
import {GameItems} from "../src/GameItems.sol";
import {SessionKeyAccount} from "../src/SessionKeyAccount.sol";
import {SessionKeyAccountFactory} from "../src/SessionKeyAccountFactory.sol";
import {Signer} from "../src/Signers.sol";
import {AccountTestBase} from "./utils/AccountTestBase.sol";
import {Vm, console} from "./utils/TestBase.sol";
import {IEntryPoint} from "@account-abstraction/contracts/interfaces/IEntryPoint.sol";
import {
    PackedUserOperation
} from "@account-abstraction/contracts/interfaces/PackedUserOperation.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @notice Gas of the ops the relayer sends, one op per handleOps: the first op of an account
/// (deploy and register a session key) and a steady-state mint (the account, the key and the
/// item balance already in use), by the owner and by a session key of every kind, on both
/// P-256 paths, and a steady-state session-key GameGold `transfer` with no argument rule, with
/// one rule (`to` is the treasury) and with an ERC-20 spend limit that has a daily allowance.
/// `forge test --match-contract GasTest -vv` prints the table.
///
/// Every op is built in setUp, so each test's transaction starts with all storage cold and
/// unwritten, as a bundle's transaction does; `test_gas_table` reverts to its starting state
/// before each row for the same reason. A figure is the gas of the handleOps call itself; a
/// transaction adds 21,000 and its calldata, printed as a second figure.
///
/// The precompile path runs against the stand-in at 0x100 (test/utils/P256PrecompileStandIn
/// .sol), which verifies in Solidity: its figures are NOT what a chain with the precompile
/// charges. The real precompile costs 6,900 gas per verification under EIP-7951 (3,450 under
/// RIP-7212), against the stand-in's ~230,000; the table prints the stand-in's own cost per
/// call and an estimate of each precompile-path row at the EIP-7951 price.
contract GasTest is AccountTestBase {
    /// @dev What one verification through the real precompile costs the caller: 6,900 gas
    /// (EIP-7951) plus the warm access of a precompile address.
    uint256 internal constant EIP7951_P256VERIFY_CALL_GAS = 6900 + 100;
    uint256 internal constant PASSKEY = 0xFA55C0DE;
    uint128 internal constant GOLD_AMOUNT = 1 ether;
    address internal constant TREASURY = address(0x7EA5C2E);

    struct Row {
        string label;
        /// How many P-256 verifications the op makes through 0x100 (0 on other paths).
        uint256 precompileCalls;
    }

    SessionKeyAccountFactory internal solidityFactory;
    SessionKeyAccountFactory internal standInFactory;
    GameGold internal gold;

    Row[] internal rows;
    PackedUserOperation[] internal ops;

    function setUp() public override {
        super.setUp();
        solidityFactory = factory;
        _etchP256PrecompileStandIn();
        standInFactory = new SessionKeyAccountFactory(entryPoint);
        vm.assertTrue(standInFactory.accountImplementation().usesP256Precompile(), "stand-in");
        vm.assertFalse(solidityFactory.accountImplementation().usesP256Precompile(), "Solidity");

        // First ops: deploy and register.
        factory = solidityFactory;
        _addDeployRow(
            "deploy + register secp256k1 key, Ethereum owner", _ethKey(ownerKey), _ethKey(0x5E55), 0
        );
        _addDeployRow(
            "deploy + register P-256 key, passkey owner, Solidity P-256",
            _webAuthnKey(PASSKEY),
            _p256Key(0x9256),
            0
        );
        factory = standInFactory;
        _addDeployRow(
            "deploy + register P-256 key, passkey owner, precompile stand-in",
            _webAuthnKey(PASSKEY),
            _p256Key(0x9356),
            1
        );

        // Steady-state mints.
        factory = solidityFactory;
        _addOwnerRow("owner mint, Ethereum owner", _ethKey(ownerKey), 10, 0);
        _addOwnerRow("owner mint, passkey owner, Solidity P-256", _webAuthnKey(PASSKEY), 10, 0);
        factory = standInFactory;
        _addOwnerRow("owner mint, passkey owner, precompile stand-in", _webAuthnKey(PASSKEY), 10, 1);

        factory = solidityFactory;
        SessionKeyAccount account = _deploy(20, "");
        _addSessionRow("session-key mint, secp256k1", account, _ethKey(sessionKey), 0);
        _addSessionRow("session-key mint, raw P-256, Solidity", account, _p256Key(0x9257), 0);
        _addSessionRow("session-key mint, WebAuthn, Solidity", account, _webAuthnKey(0x9258), 0);
        factory = standInFactory;
        account = _deploy(20, "");
        _addSessionRow(
            "session-key mint, raw P-256, precompile stand-in", account, _p256Key(0x9357), 1
        );
        _addSessionRow(
            "session-key mint, WebAuthn, precompile stand-in", account, _webAuthnKey(0x9358), 1
        );
        factory = solidityFactory;

        // Steady-state GameGold transfers to the treasury by secp256k1 session keys.
        gold = new GameGold();
        account = _deploy(21, "");
        gold.mint(address(account), 1000 * GOLD_AMOUNT);
        _addTransferRow(
            "session-key GameGold transfer, no argument rule",
            account,
            _ethKey(0x601D),
            _goldPermissions(new SessionKeyAccount.ArgumentRule[](0), false)
        );
        _addTransferRow(
            "session-key GameGold transfer, one argument rule (to == treasury)",
            account,
            _ethKey(0x601E),
            _goldPermissions(_toTreasury(), false)
        );
        _addTransferRow(
            "session-key GameGold transfer, ERC-20 spend limit with a daily allowance",
            account,
            _ethKey(0x601F),
            _goldPermissions(new SessionKeyAccount.ArgumentRule[](0), true)
        );
    }

    // ---------------------------------------------------------------------------------------
    // Building the rows
    // ---------------------------------------------------------------------------------------

    function _gamePermissions()
        internal
        view
        returns (SessionKeyAccount.SessionPermissions memory)
    {
        return _permissions(
            100,
            0.01 ether,
            0.1 ether,
            _list(
                _allow(address(items), GameItems.mint.selector),
                _allow(address(items), GameItems.buy.selector)
            )
        );
    }

    function _addDeployRow(
        string memory label,
        Key memory accountOwner,
        Key memory key,
        uint256 precompileCalls
    ) internal {
        Signer memory ownerSigner = _signerOf(accountOwner);
        address predicted = factory.getAddress(ownerSigner, 0);
        vm.deal(predicted, ACCOUNT_FUNDING);
        PackedUserOperation memory op = _signAsOwner(
            _op(
                predicted,
                _initCode(ownerSigner, 0),
                _registerCallData(predicted, key, NOW - 1, NOW + 1 days, _gamePermissions())
            ),
            accountOwner
        );
        _addRow(label, op, precompileCalls);
    }

    /// @dev An owner mint from an account that already made one.
    function _addOwnerRow(
        string memory label,
        Key memory accountOwner,
        uint256 salt,
        uint256 precompileCalls
    ) internal {
        SessionKeyAccount account =
            _deployFor(accountOwner, salt, _mintCall(_predict(accountOwner, salt)));
        _addRow(label, _opBy(account, accountOwner, _mintCall(address(account))), precompileCalls);
    }

    /// @dev A session-key mint by `key`, registered on `account`, after one mint by it.
    function _addSessionRow(
        string memory label,
        SessionKeyAccount account,
        Key memory key,
        uint256 precompileCalls
    ) internal {
        _registerByOp(account, key, NOW - 1, NOW + 1 days, _gamePermissions());
        _sessionMint(account, key);
        _addRow(label, _opBy(account, key, _mintCall(address(account))), precompileCalls);
    }

    /// @dev `transfer` on GameGold, with `rules`, and with a spend limit when `limited`: a
    /// lifetime total and a daily allowance, both far above what the rows spend.
    function _goldPermissions(SessionKeyAccount.ArgumentRule[] memory rules, bool limited)
        internal
        view
        returns (SessionKeyAccount.SessionPermissions memory permissions)
    {
        permissions = _permissions(
            100,
            0,
            0,
            _list(
                SessionKeyAccount.CallPermission({
                    target: address(gold),
                    selector: IERC20.transfer.selector,
                    anySelector: false,
                    rules: rules
                })
            )
        );
        if (limited) {
            permissions.limits = new SessionKeyAccount.SpendLimit[](1);
            permissions.limits[0] = SessionKeyAccount.SpendLimit({
                asset: SessionKeyAccount.Asset.ERC20,
                token: address(gold),
                id: 0,
                total: 100 * GOLD_AMOUNT,
                perPeriod: 10 * GOLD_AMOUNT,
                period: 1 days
            });
        }
    }

    /// @dev One rule: parameter 0 of `transfer(to, amount)` is the treasury.
    function _toTreasury() internal pure returns (SessionKeyAccount.ArgumentRule[] memory rules) {
        bytes32[] memory values = new bytes32[](1);
        values[0] = bytes32(uint256(uint160(TREASURY)));
        rules = new SessionKeyAccount.ArgumentRule[](1);
        rules[0] = SessionKeyAccount.ArgumentRule({
            param: 0, width: 20, condition: SessionKeyAccount.Condition.Equal, values: values
        });
    }

    function _goldTransferCall() internal view returns (bytes memory) {
        return _execute(address(gold), 0, abi.encodeCall(IERC20.transfer, (TREASURY, GOLD_AMOUNT)));
    }

    /// @dev A session-key transfer of gold to the treasury by `key`, registered on `account`
    /// with `permissions`, after one such transfer by it (the treasury's balance, the key's
    /// counters and any spend limit already written).
    function _addTransferRow(
        string memory label,
        SessionKeyAccount account,
        Key memory key,
        SessionKeyAccount.SessionPermissions memory permissions
    ) internal {
        _registerByOp(account, key, NOW - 1, NOW + 1 days, permissions);
        _handleOk(_opBy(account, key, _goldTransferCall()));
        _addRow(label, _opBy(account, key, _goldTransferCall()), 0);
    }

    function _predict(Key memory accountOwner, uint256 salt) internal view returns (address) {
        return factory.getAddress(_signerOf(accountOwner), salt);
    }

    function _addRow(string memory label, PackedUserOperation memory op, uint256 precompileCalls)
        internal
    {
        rows.push(Row({label: label, precompileCalls: precompileCalls}));
        ops.push(op);
    }

    // ---------------------------------------------------------------------------------------
    // Measuring
    // ---------------------------------------------------------------------------------------

    /// @dev The gas of handleOps for row `i`, and the calldata gas of its transaction.
    function _measure(uint256 i) internal returns (uint256 gasUsed, uint256 calldataGas) {
        PackedUserOperation[] memory bundle = _one(ops[i]);
        bytes memory data = abi.encodeCall(IEntryPoint.handleOps, (bundle, beneficiary));
        calldataGas = _calldataGas(data);
        bytes32 userOpHash = entryPoint.getUserOpHash(bundle[0]);
        address target = address(entryPoint);
        // A transaction's `to` is warm from the start.
        vm.assertGt(target.code.length, 0, "EntryPoint");

        vm.recordLogs();
        vm.prank(bundler, bundler);
        bool ok;
        uint256 before = gasleft();
        assembly ("memory-safe") {
            // No return data is copied, so nothing but the call itself is measured.
            ok := call(gas(), target, 0, add(data, 32), mload(data), 0, 0)
        }
        gasUsed = before - gasleft();
        vm.assertTrue(ok, "handleOps");
        _assertSucceeded(userOpHash);
    }

    function _assertSucceeded(bytes32 userOpHash) internal {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i = 0; i < logs.length; i++) {
            if (
                logs[i].topics.length > 1
                    && logs[i].topics[0] == IEntryPoint.UserOperationEvent.selector
                    && logs[i].topics[1] == userOpHash
            ) {
                (, bool success,,) = abi.decode(logs[i].data, (uint256, bool, uint256, uint256));
                vm.assertTrue(success, "the op ran");
                return;
            }
        }
        revert("no UserOperationEvent for the op");
    }

    /// @dev EIP-2028 calldata gas: 4 per zero byte, 16 per other byte.
    function _calldataGas(bytes memory data) internal pure returns (uint256 gas) {
        for (uint256 i = 0; i < data.length; i++) {
            gas += data[i] == 0 ? 4 : 16;
        }
    }

    /// @dev What one call of the stand-in costs for a valid signature, as the account makes it.
    function _standInCallGas() internal view returns (uint256 gasUsed) {
        (uint256 x, uint256 y) = vm.publicKeyP256(PASSKEY);
        bytes32 h = sha256("gas");
        (bytes32 r, bytes32 s) = _p256Sign(PASSKEY, h);
        bytes memory input = abi.encodePacked(h, r, s, x, y);
        uint256 before = gasleft();
        (bool ok, bytes memory result) = P256_PRECOMPILE.staticcall(input);
        gasUsed = before - gasleft();
        vm.assertTrue(ok && result.length == 32, "the stand-in verified");
    }

    function _log(uint256 i) internal returns (uint256 gasUsed) {
        uint256 calldataGas;
        (gasUsed, calldataGas) = _measure(i);
        console.log(string.concat("handleOps gas | ", rows[i].label), gasUsed);
        console.log(
            "    transaction estimate (+ 21,000 + calldata)", gasUsed + 21_000 + calldataGas
        );
    }

    // ---------------------------------------------------------------------------------------
    // Tests
    // ---------------------------------------------------------------------------------------

    /// @dev Prints every row. Each row starts from the state setUp left, cold.
    function test_gas_table() public {
        uint256 start = vm.snapshotState();
        uint256 standIn = _standInCallGas();
        console.log("one P-256 verification by the stand-in at 0x100 (not the precompile)", standIn);
        for (uint256 i = 0; i < rows.length; i++) {
            vm.revertToState(start);
            uint256 gasUsed = _log(i);
            if (rows[i].precompileCalls != 0) {
                console.log(
                    "    estimate with the real precompile (EIP-7951: 6,900 + 100 warm access)",
                    gasUsed - rows[i].precompileCalls * (standIn - EIP7951_P256VERIFY_CALL_GAS)
                );
            }
        }
    }

    // One test per row: each measures in a transaction of its own.

    function test_gas_registerSessionKeyWithDeploy() public {
        _log(0);
        SessionKeyAccount account = SessionKeyAccount(payable(ops[0].sender));
        address key = vm.addr(0x5E55);
        vm.assertTrue(_isRegistered(account, key), "key registered");
        vm.assertTrue(
            account.isCallAllowed(registrationOf[key], address(items), GameItems.buy.selector),
            "buy allowed"
        );
    }

    function test_gas_passkeyOwnerDeployAndRegister_solidity() public {
        _log(1);
        vm.assertTrue(
            _isRegistered(SessionKeyAccount(payable(ops[1].sender)), _idOf(_p256Key(0x9256))),
            "registered"
        );
    }

    function test_gas_passkeyOwnerDeployAndRegister_standIn() public {
        _log(2);
        vm.assertTrue(
            _isRegistered(SessionKeyAccount(payable(ops[2].sender)), _idOf(_p256Key(0x9356))),
            "registered"
        );
    }

    function test_gas_ownerMint_ethereumOwner() public {
        _assertMints(3);
    }

    function test_gas_ownerMint_passkey_solidity() public {
        _assertMints(4);
    }

    function test_gas_ownerMint_passkey_standIn() public {
        _assertMints(5);
    }

    function test_gas_sessionKeyMint() public {
        _assertMints(6);
        vm.assertEq(_callsUsed(SessionKeyAccount(payable(ops[6].sender)), session), 2, "counted");
    }

    function test_gas_sessionKeyMint_p256_solidity() public {
        _assertMints(7);
    }

    function test_gas_sessionKeyMint_webAuthn_solidity() public {
        _assertMints(8);
    }

    function test_gas_sessionKeyMint_p256_standIn() public {
        _assertMints(9);
    }

    function test_gas_sessionKeyMint_webAuthn_standIn() public {
        _assertMints(10);
    }

    function test_gas_sessionKeyTransfer_noRule() public {
        _assertTransfers(11);
    }

    function test_gas_sessionKeyTransfer_argumentRule() public {
        _assertTransfers(12);
    }

    function test_gas_sessionKeyTransfer_spendLimit() public {
        _assertTransfers(13);
        SessionKeyAccount account = SessionKeyAccount(payable(ops[13].sender));
        SessionKeyAccount.SpendState memory state =
            account.getSpendLimit(registrationOf[_idOf(_ethKey(0x601F))], address(gold), 0);
        vm.assertEq(state.spent, 2 * GOLD_AMOUNT, "both transfers counted");
        vm.assertEq(state.periodSpent, 2 * GOLD_AMOUNT, "in today's allowance");
    }

    /// @dev Measures row `i` and checks it paid the treasury, reading the balance before in a
    /// state that is then reverted (see `_assertMints`).
    function _assertTransfers(uint256 i) internal {
        uint256 start = vm.snapshotState();
        uint256 before = gold.balanceOf(TREASURY);
        vm.revertToState(start);
        _log(i);
        vm.assertEq(gold.balanceOf(TREASURY), before + GOLD_AMOUNT, "transferred");
    }

    /// @dev Measures row `i` and checks it minted. The balance before is read in a state that
    /// is then reverted, so that reading it does not warm what the op touches.
    function _assertMints(uint256 i) internal {
        SessionKeyAccount account = SessionKeyAccount(payable(ops[i].sender));
        uint256 start = vm.snapshotState();
        uint256 before = _balance(account);
        vm.revertToState(start);
        _log(i);
        vm.assertEq(_balance(account), before + 1, "minted");
    }
}
