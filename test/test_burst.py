"""A burst of 20 000 envelopes between two process heads arrives complete, in order, exactly once."""

import pytest

from harness import run_script
from heads import Burst, Sink


@pytest.mark.timeout(180)
def test_burst_between_two_process_heads_is_complete_in_order_exactly_once():
    count = 20000

    def script(main):
        go = main.send('burst', 'go', {'count': count, 'to': 'sink'})
        assert main.wait_for_reply(go, timeout=120)['body'] == 'sent'
        report = main.send('sink', 'report', 'all')
        return main.wait_for_reply(report, timeout=60)['body']

    report = run_script(script, [(Burst, {'mode': 'process'}), (Sink, {'mode': 'process'})],
                        queue_size=100).outcome
    assert report['count'] == count
    assert report['items'] == list(range(count))
