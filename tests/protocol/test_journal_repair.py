"""A journal whose last record was cut off is backed up, truncated to its complete records, and readable again."""

from __future__ import annotations

import optuna

from benchmark.protocol import storage as st
from benchmark.protocol.journal_repair import complete_prefix_length, repair_journal


def test_complete_prefix_stops_at_the_first_torn_or_undecodable_line():
    assert complete_prefix_length(b'{"a":1}\n{"b":2}\n') == 16
    assert complete_prefix_length(b'{"a":1}\n{"b":') == 8  # torn last line
    assert complete_prefix_length(b'{"a":1}\n{"b":{"c":1}\n{"d":4}\n') == 8  # torn line with a record appended
    assert complete_prefix_length(b"") == 0


def test_torn_journal_is_repaired_and_keeps_its_complete_records(tmp_path, capsys):
    study = st.get_study(st.create_storage(None, tmp_path), "s")
    for value in (0.1, 0.2):
        study.tell(study.ask(), value)
    journal = tmp_path / st.JOURNAL_FILE
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'{"op_code": 5, "trial_id"')  # a record cut off by a power loss
    assert repair_journal(journal) is not None
    assert journal.read_bytes() == whole
    backups = list(tmp_path.glob("optuna.journal.torn-*"))
    assert len(backups) == 1 and backups[0].read_bytes().startswith(whole)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: ") and "incomplete record" in err[0]
    again = optuna.load_study(study_name="s", storage=st.create_storage(None, tmp_path))
    assert [t.value for t in again.get_trials()] == [0.1, 0.2]
    again.tell(again.ask(), 0.3)  # and it can be written to again
    assert repair_journal(journal) is None


def test_sound_journal_is_left_alone(tmp_path):
    study = st.get_study(st.create_storage(None, tmp_path), "s")
    study.tell(study.ask(), 0.5)
    before = (tmp_path / st.JOURNAL_FILE).read_bytes()
    assert repair_journal(tmp_path / st.JOURNAL_FILE) is None
    assert (tmp_path / st.JOURNAL_FILE).read_bytes() == before
    assert not list(tmp_path.glob("*.torn-*"))
