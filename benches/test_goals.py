"""Tests of benches/goals.py on made-up rounds (run by scripts/test.sh)."""

import unittest

import goals


def result(rate, p99_us=1000, errors=0):
    return {"rate": rate, "errors": errors, "ops": int(rate), "p99_us": p99_us}


class Goals(unittest.TestCase):
    def test_the_ratio_to_haproxy_is_taken_round_by_round(self):
        # Rates drift between rounds; in two of three sluice is 1.3x HAProxy. (The medians'
        # quotient would be 130 / 150.)
        by_target = {goals.SLUICE: [result(130), result(260), result(60)],
                     goals.HAPROXY: [result(100), result(200), result(150)]}
        goal, value, met = goals.over_haproxy_row("unary", by_target)
        self.assertIn("1.30x", value)
        self.assertNotIn("relay", value)
        self.assertEqual(met, "yes")
        by_target[goals.RELAY] = [result(110), result(240), result(150)]
        self.assertIn("the bare h2 relay: 1.10x", goals.over_haproxy_row("unary", by_target)[1])

    def test_a_worse_p99_misses_the_goal_whatever_the_rate(self):
        by_target = {goals.SLUICE: [result(200, p99_us=2000)], goals.HAPROXY: [result(100, p99_us=1000)]}
        self.assertEqual(goals.over_haproxy_row("bidi", by_target)[2], "no")

    def test_rounds_with_errors_do_not_count(self):
        by_target = {goals.SLUICE: [result(130), result(500, errors=3)],
                     goals.HAPROXY: [result(100), result(100)]}
        self.assertEqual(goals.per_round(by_target, goals.HAPROXY, goals.SLUICE), [1.3])
        everything_failed = {goals.SLUICE: [result(130, errors=1)], goals.HAPROXY: [result(100)]}
        self.assertEqual(goals.over_haproxy_row("unary", everything_failed)[2], "–")

    def test_the_chain_cost_counts_rounds_within_ten_percent(self):
        by_target = {goals.SLUICE: [result(100), result(100), result(100)],
                     goals.CHAIN: [result(92), result(89), result(91)]}
        goal, value, met = goals.chain_row("bidi", by_target)
        self.assertIn("−9.0%", value)
        self.assertIn("within 10% in 2 of 3", value)
        self.assertEqual(met, "yes")
        by_target[goals.CHAIN] = [result(88), result(89), result(91)]
        self.assertEqual(goals.chain_row("bidi", by_target)[2], "no")

    def test_memory_goals(self):
        idle = {goals.SLUICE: {"streams": 10_000, "errors": 0, "kib_per_stream": 2.9}}
        rows = goals.memory_rows(idle, 30 * 1024)
        self.assertEqual([met for _, _, met in rows], ["yes", "yes"])
        too_few = {goals.SLUICE: {"streams": 500, "errors": 0, "kib_per_stream": 2.9}}
        self.assertEqual(goals.memory_rows(too_few, 41 * 1024)[0][2], "no")
        self.assertEqual(goals.memory_rows(too_few, None)[0][2], "no")

    def test_the_table_has_a_row_per_goal(self):
        runs = {"unary": {goals.SLUICE: [result(130)], goals.HAPROXY: [result(100)], goals.CHAIN: [result(120)]}}
        text = goals.table(runs, {}, 30 * 1024)
        rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| goal")]
        self.assertEqual(len(rows), 3)
        self.assertTrue(text.startswith("### Against the goals"))


if __name__ == "__main__":
    unittest.main()
