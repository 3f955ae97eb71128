"""The user's suites (suites/) on the SSH test boards, exactly as on `--device local`:
`pytest suites/ --device NAME` in a child pytest, with the boards' YAMLs as inventory."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from harness.store import Store
from inner_pytest import inner_env, run_inner, suites
from paths import ROOT


def test_suites_run_on_a_board_and_an_older_image(ssh_lab, fast_board, old_board, tmp_path):
    ssh_lab.spec(fast_board)
    ssh_lab.spec(old_board)
    store = f"sqlite:///{tmp_path / 'store.sqlite'}"
    proc = run_inner(suites(ssh_lab.root / "devices", store, fast_board.name, old_board.name), timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    rows = Store(store).measurements()
    on = {m.device for m in rows}
    assert on == {fast_board.name, old_board.name}, out[-3000:]
    # The older image (numpy < 2, tflite-runtime, no onnxruntime): the .tflite variants run,
    # the ONNX ones are skipped with the reason.
    old_rows = [m for m in rows if m.device == old_board.name]
    assert old_rows and all(m.variant_id.split("/")[1].startswith("tflite") for m in old_rows), out[-3000:]
    assert f"{old_board.name} cannot run" in out and "tflite_runtime" in out
    assert old_rows[0].provenance["numpy_version"].startswith("1.")
    # Provenance names the board, never how to log in.
    stored = json.dumps([m.to_dict() for m in rows], default=str)
    assert str(ssh_lab.client_key) not in stored and "key_file" not in stored and "known_hosts" not in stored
    assert rows[0].provenance["device_info"]["kind"] == "ssh"


def test_a_board_lost_mid_suite_keeps_what_was_measured(ssh_lab, make_board, tmp_path):
    board = make_board("lost")
    ssh_lab.spec(board, retries=1, retry_wait_s=0.2)
    db = tmp_path / "store.sqlite"
    store = f"sqlite:///{db}"
    child = subprocess.Popen(suites(ssh_lab.root / "devices", store, board.name), cwd=ROOT, env=inner_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and child.poll() is None:
            if db.exists() and _count(db) >= 2:
                break
            time.sleep(0.2)
        assert child.poll() is None, "the suite ended before the board could be dropped"
        ssh_lab.kill_board(board)  # and it stays down
        out, _ = child.communicate(timeout=600)
    finally:
        if child.poll() is None:
            child.kill()
    kept = Store(store).measurements()
    assert len(kept) >= 2
    assert "failed after 2 attempts" in out and "cannot connect" in out, out[-3000:]
    assert child.returncode == 1  # the lost measurements fail; nothing hangs, nothing passes silently


def _count(db: Path) -> int:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("select count(*) from measurements").fetchone()[0]
    except sqlite3.Error:
        return 0
