"""A simulated Asterisk node for `make bench-farm`: enough AMI (TCP, Asterisk's own text protocol)
and ARI (REST and the event WebSocket, aiohttp) for the dispatcher, with a set capacity, answer
delay and call length, so K of them on loopback stand for a farm that no machine here could run.

What it says about a call is what this stack's Asterisk 22 said, frame for frame, in the
recordings tests/fixtures/ami/*.txt and tests/fixtures/ari/*.jsonl (the dispatcher's AMI user,
with its event filter; the ARI app with the dispatcher's event filter):
tests/unit/test_fake_asterisk.py holds the fake to them.

- calls.py: a call's plan (the far end's answer by trunk name, as the stack's SIPp carriers), pure
- node.py: one node's channels, its capacity and its timers, told to its listeners
- ami_frames.py / ari_messages.py: what each protocol says of a channel's step, pure
- ami_server.py / ari_server.py: the two servers
- __main__.py: `python -m bench.fake_asterisk`, K nodes in one process
"""
