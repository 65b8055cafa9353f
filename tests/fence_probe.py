"""A local worker's setup for tests/test_fence.py: log every checkpoint save (slowed to 0.4 s)
and every claim check that finds the claim taken over, one JSON line each."""

import json
import os
import time


def _append(path, **entry):
    with open(path, "a") as handle:
        handle.write(json.dumps({"pid": os.getpid(), **entry}) + "\n")


def log_checkpoint_saves(path):
    from pneumobench.runs.fence import ClaimFence, ClaimTakenOver
    from pneumobench.training import engine

    save, check = engine._save_checkpoint, ClaimFence.check

    def slow_logged_save(writer, state, identity, target, elapsed_s):
        started = time.time()
        time.sleep(0.4)
        save(writer, state, identity, target, elapsed_s)
        writer.wait()  # logged once on disk
        _append(path, event="saved", started=started, epochs=state.curves[-1]["epoch"])

    def logged_check(fence):
        try:
            check(fence)
        except ClaimTakenOver:
            _append(path, event="taken over", at=time.time())
            raise

    engine._save_checkpoint = slow_logged_save
    ClaimFence.check = logged_check
