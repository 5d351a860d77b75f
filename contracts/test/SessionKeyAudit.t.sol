// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {GameItems} from "../src/GameItems.sol";
import {SessionKeyAccount} from "../src/SessionKeyAccount.sol";
import {AccountTestBase} from "./utils/AccountTestBase.sol";
import {
    PackedUserOperation
} from "@account-abstraction/contracts/interfaces/PackedUserOperation.sol";

/// @notice A contract with a function whose selector is 0x00000000 (`wycpnbqcyf()`), next to a
/// plain `receive`: what a "may send ETH here" permission must not open.
contract ZeroSelectorTarget {
    bool public called;

    receive() external payable {}

    /// @dev keccak256("wycpnbqcyf()") starts with four zero bytes.
    function wycpnbqcyf() external {
        called = true;
    }
}

/// @notice One test per finding of the v1 audit, each showing the attack now fails, through the
/// EntryPoint.
contract SessionKeyAuditTest is AccountTestBase {
    bytes4 internal constant MAGIC = 0x1626ba7e;
    bytes4 internal constant INVALID = 0xffffffff;
    uint256 internal constant OTHER_CHAIN_ID = 8453;

    // ---------------------------------------------------------------------------------------
    // (a) A revoked key's signed-but-unlanded op revived by registering the key again
    // ---------------------------------------------------------------------------------------

    /// @dev The key signs an op that is still in some mempool when the owner revokes the key
    /// (by `revokeAll` or not), then registers the same key again with the same permissions.
    /// In v1 the old op became valid again. Now its frame names the old registration, which
    /// stays void, and rewriting the frame to name the new one breaks the signature.
    function _assertUnlandedOpStaysDead(bool revokeAll) internal {
        SessionKeyAccount account = _deployWithSession(_mintPermissions(10));
        bytes32 old = registrationOf[session];
        PackedUserOperation memory unlanded =
            _opBy(account, sessionKey, _execute(address(items), 0, _mintData(stranger, 1000)));

        if (revokeAll) _ownerOp(account, _revokeAllCallData(address(account)));
        else _ownerOp(account, _revokeCallData(address(account), old));
        bytes32 fresh = _registerByOp(account, session, NOW - 1, NOW + 1 days, _mintPermissions(10));
        vm.assertTrue(account.getSessionKey(fresh).registered, "the key is registered again");
        vm.assertFalse(account.getSessionKey(old).registered, "the old registration stays void");

        _handleExpectRevert(unlanded, _aa24());

        // The attacker rewrites the frame to name the new registration: the key never signed
        // that.
        bytes memory reframed = unlanded.signature;
        for (uint256 i = 0; i < 32; i++) {
            reframed[1 + i] = fresh[i];
        }
        unlanded.signature = reframed;
        _handleExpectRevert(unlanded, _aa24());
        vm.assertEq(items.balanceOf(stranger, ITEM_ID), 0, "the old op never ran");

        // Nor can the owner be asked to register under the old id.
        _handleExpectExecutionRevert(
            _opBy(
                account,
                ownerKey,
                _registerCallData(
                    address(account),
                    old,
                    _ethSigner(session),
                    NOW - 1,
                    NOW + 1 days,
                    _mintPermissions(10)
                )
            ),
            abi.encodeWithSelector(SessionKeyAccount.RegistrationAlreadyUsed.selector, old)
        );

        // The key works again for what it signs now.
        _sessionMint(account, sessionKey);
        vm.assertEq(_balance(account), 1, "a fresh op runs");
    }

    function test_audit_a_unlandedOpOfARevokedKeyStaysDeadAfterReRegistration() public {
        _assertUnlandedOpStaysDead(false);
    }

    function test_audit_a_unlandedOpStaysDeadAfterRevokeAllAndReRegistration() public {
        _assertUnlandedOpStaysDead(true);
    }

    function testFuzz_audit_a_unlandedOpStaysDead(bool revokeAll) public {
        _assertUnlandedOpStaysDead(revokeAll);
    }

    // ---------------------------------------------------------------------------------------
    // (b) ERC-1271 replay across accounts and chains
    // ---------------------------------------------------------------------------------------

    /// @dev In v1 an owner's signature of the bare hash was valid on every account of the
    /// owner, on every chain. Now the owner signs the hash wrapped in the account's EIP-712
    /// domain: one account, one chain.
    function test_audit_b_erc1271SignatureDoesNotReplay() public {
        SessionKeyAccount first = _deploy(0, "");
        SessionKeyAccount second = _deploy(1, "");
        bytes32 hash = keccak256("permit: spend 1000 tokens");
        uint256 chainId = block.chainid;

        bytes memory forFirst = _sig(ownerKey, first.replaySafeHash(hash));
        vm.assertEq(bytes32(first.isValidSignature(hash, forFirst)), bytes32(MAGIC), "valid");
        vm.assertEq(
            bytes32(second.isValidSignature(hash, forFirst)),
            bytes32(INVALID),
            "not on another account of the same owner"
        );

        vm.chainId(OTHER_CHAIN_ID);
        vm.assertEq(
            bytes32(first.isValidSignature(hash, forFirst)),
            bytes32(INVALID),
            "not on another chain"
        );
        vm.chainId(chainId);

        bytes memory bare = _sig(ownerKey, hash);
        vm.assertEq(bytes32(first.isValidSignature(hash, bare)), bytes32(INVALID), "bare hash");
        vm.assertEq(bytes32(second.isValidSignature(hash, bare)), bytes32(INVALID), "bare hash");
        vm.assertEq(
            bytes32(first.isValidSignature(hash, _sig(ownerKey, _personalDigest(hash)))),
            bytes32(INVALID),
            "personal-signed hash"
        );
    }

    function testFuzz_audit_b_erc1271SignatureDoesNotReplay(bytes32 hash, uint64 otherChain)
        public
    {
        vm.assume(otherChain != block.chainid);
        SessionKeyAccount first = _deploy(0, "");
        SessionKeyAccount second = _deploy(1, "");
        bytes memory forFirst = _sig(ownerKey, first.replaySafeHash(hash));
        vm.assertEq(bytes32(first.isValidSignature(hash, forFirst)), bytes32(MAGIC), "valid");
        vm.assertEq(bytes32(second.isValidSignature(hash, forFirst)), bytes32(INVALID), "other");
        vm.assertEq(
            bytes32(first.isValidSignature(hash, _sig(ownerKey, hash))), bytes32(INVALID), "bare"
        );
        vm.chainId(otherChain);
        vm.assertEq(bytes32(first.isValidSignature(hash, forFirst)), bytes32(INVALID), "chain");
    }

    // ---------------------------------------------------------------------------------------
    // (c) The zero selector admitting calldata that starts with four zero bytes
    // ---------------------------------------------------------------------------------------

    /// @dev The key may send ETH to `target` (entry (target, 0x00000000)). In v1 that entry
    /// also matched any calldata starting with 0x00000000, such as a call of `wycpnbqcyf()`.
    function test_audit_c_zeroSelectorEntryDoesNotAdmitZeroPrefixedCallData() public {
        ZeroSelectorTarget target = new ZeroSelectorTarget();
        vm.assertEq(bytes32(ZeroSelectorTarget.wycpnbqcyf.selector), bytes32(0), "a zero selector");
        SessionKeyAccount account = _deployWithSession(
            _permissions(10, 1 ether, 1 ether, _list(_allow(address(target), bytes4(0))))
        );

        _handleExpectRevert(
            _opBy(
                account,
                sessionKey,
                _execute(address(target), 0, abi.encodeCall(ZeroSelectorTarget.wycpnbqcyf, ()))
            ),
            _aa23(
                abi.encodeWithSelector(
                    SessionKeyAccount.SessionKeyCallNotAllowed.selector, address(target), bytes4(0)
                )
            )
        );
        vm.assertFalse(target.called(), "the zero-selector function never ran");

        // What the entry is for still works.
        _handleOk(_opBy(account, sessionKey, _execute(address(target), 0.1 ether, "")));
        vm.assertEq(address(target).balance, 0.1 ether, "plain transfer made");
        vm.assertTrue(
            account.isCallAllowed(registrationOf[session], address(target), bytes4(0)),
            "the view answers for an empty call"
        );
        vm.assertFalse(
            account.isCallAllowed(
                registrationOf[session], address(target), GameItems.mint.selector
            ),
            "nothing else allowed"
        );
    }

    // ---------------------------------------------------------------------------------------
    // (d) An op held back past its deadline
    // ---------------------------------------------------------------------------------------

    /// @dev A session-key op carries its own deadline. A bundler (or anyone holding the op) who
    /// sits on it until after the deadline cannot land it, though its signature is valid and
    /// the key's registration is still open.
    function test_audit_d_opPastItsDeadlineIsRefused() public {
        SessionKeyAccount account = _deployWithSession(_mintPermissions(10));
        uint48 deadline = NOW + 5 minutes;
        PackedUserOperation memory op = _op(address(account), "", _mintCall(address(account)));
        op.nonce = entryPoint.getNonce(address(account), _lane(session, 0));
        op = _signSession(op, sessionKey, registrationOf[session], deadline);

        uint256 snapshot = vm.snapshotState();
        vm.warp(deadline);
        _handleOk(op);
        vm.assertEq(_balance(account), 1, "valid up to its deadline");
        vm.revertToState(snapshot);

        vm.warp(deadline + 1);
        vm.assertTrue(_isRegistered(account, session), "the registration is still open");
        vm.assertLt(block.timestamp, _sessionOf(account, session).validUntil, "window open");
        _handleExpectRevert(op, _aa22());
        vm.assertEq(_balance(account), 0, "nothing minted");
    }

    function testFuzz_audit_d_opPastItsDeadlineIsRefused(uint256 lifetime, uint256 delay) public {
        lifetime = bound(lifetime, 1, 12 hours);
        delay = bound(delay, 1, 12 hours);
        SessionKeyAccount account = _deployWithSession(_mintPermissions(10));
        uint48 deadline = uint48(NOW + lifetime);
        PackedUserOperation memory op = _op(address(account), "", _mintCall(address(account)));
        op.nonce = entryPoint.getNonce(address(account), _lane(session, 0));
        op = _signSession(op, sessionKey, registrationOf[session], deadline);
        vm.warp(deadline + delay);
        _handleExpectRevert(op, _aa22());
    }

    // ---------------------------------------------------------------------------------------
    // (e) A first op with initCode after createAccount was front-run
    // ---------------------------------------------------------------------------------------

    /// @dev Anyone may call `createAccount` for the owner, since it is idempotent and the owner
    /// is in the salt: the front-runner gains nothing, but the owner's first op, which carries
    /// initCode, now fails AA10. The same op rebuilt without initCode must be signed again
    /// (initCode is part of the userOpHash), and then goes through.
    function test_audit_e_frontRunCreateAccountFailsAA10UntilRebuiltWithoutInitCode() public {
        address predicted = factory.getAddress(_ethSigner(owner), 0);
        vm.deal(predicted, ACCOUNT_FUNDING);
        PackedUserOperation memory first =
            _signPersonal(_op(predicted, _initCode(owner, 0), _mintCall(predicted)), ownerKey);

        vm.prank(stranger);
        SessionKeyAccount account = factory.createAccount(_ethSigner(owner), 0);
        vm.assertEq(address(account), predicted, "the front-runner deployed it");
        vm.assertEq(account.owner(), owner, "for the owner");

        _handleExpectRevert(first, _aa10());

        PackedUserOperation memory rebuilt = _op(predicted, "", _mintCall(predicted));
        vm.assertEq(rebuilt.nonce, first.nonce, "the same nonce");
        rebuilt.signature = first.signature;
        _handleExpectRevert(rebuilt, _aa24());
        _handleOk(_signPersonal(rebuilt, ownerKey));
        vm.assertEq(_balance(account), 1, "the rebuilt op ran");
    }

    /// @dev With the AA10 op in a bundle, the EntryPoint reverts the whole handleOps with
    /// FailedOp(index of that op, "AA10 sender already constructed"): nothing in the bundle
    /// lands, including the valid ops before it. A bundler drops the op (simulation shows the
    /// same error) and sends the rest.
    function test_audit_e_aa10OpRevertsTheWholeBundleAtItsIndex() public {
        SessionKeyAccount other = _deploy(1, "");
        PackedUserOperation memory valid = _opBy(other, ownerKey, _mintCall(address(other)));

        address predicted = factory.getAddress(_ethSigner(owner), 0);
        vm.deal(predicted, ACCOUNT_FUNDING);
        PackedUserOperation memory stale =
            _signPersonal(_op(predicted, _initCode(owner, 0), _mintCall(predicted)), ownerKey);
        factory.createAccount(_ethSigner(owner), 0);

        PackedUserOperation[] memory bundle = new PackedUserOperation[](2);
        bundle[0] = valid;
        bundle[1] = stale;
        _handleExpectRevert(bundle, _failedOp(1, "AA10 sender already constructed"));
        vm.assertEq(_balance(other), 0, "the valid op did not land either");

        _handleOk(valid);
        vm.assertEq(_balance(other), 1, "without the stale op it lands");
    }
}
