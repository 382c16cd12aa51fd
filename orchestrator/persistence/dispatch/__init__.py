"""What the dispatcher reads and writes, by concern: claims (claims.py, candidates.py), status
transitions (transitions.py), ownership of attempts (ownership.py), nodes (nodes.py) and the
periodic sweeps (sweeps.py); `DispatchStore` (store.py) serves them all on one pool."""

from orchestrator.persistence.dispatch.candidates import EXPIRED_REASON, take_fairly
from orchestrator.persistence.dispatch.store import DispatchStore
from orchestrator.persistence.dispatch.transitions import transition_layers

__all__ = ["EXPIRED_REASON", "DispatchStore", "take_fairly", "transition_layers"]
