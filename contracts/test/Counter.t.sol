// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Counter} from "../src/Counter.sol";
import {TestBase} from "./utils/TestBase.sol";

contract CounterTest is TestBase {
    Counter internal counter = new Counter();

    function test_eachCallerCountsOnItsOwn() public {
        address alice = address(0xA11CE);
        vm.prank(alice);
        counter.count();
        vm.prank(alice);
        counter.count();
        vm.assertEq(counter.counts(alice), 2, "two counts");
        vm.assertEq(counter.counts(address(this)), 0, "nobody else counted");
    }

    function testFuzz_countsEveryCall(address caller, uint8 times) public {
        for (uint256 i = 0; i < times; i++) {
            vm.prank(caller);
            counter.count();
        }
        vm.assertEq(counter.counts(caller), times, "one count per call");
    }
}
