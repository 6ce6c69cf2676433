"""Decks from the service, imported into a real Anki collection: a note keeps its GUID across
the session deck, the weak-spot deck and re-downloads, so re-importing never duplicates."""

from __future__ import annotations

import pytest
from anki.collection import Collection
from anki_helpers import import_apkg, rendered
from fake_openai import FakeOpenAI
from service_app import TUTOR, service

pytestmark = pytest.mark.timeout(180)


def download(svc, url, headers, tmp_path, name):
    r = svc.client.get(url, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/apkg"
    path = tmp_path / name
    path.write_bytes(r.content)
    return r.headers["content-disposition"], path


def guids(col):
    return sorted(col.get_note(n).guid for n in col.find_notes(""))


def test_session_and_weak_spot_decks_share_notes_and_never_duplicate_them(tmp_path):
    with FakeOpenAI(TUTOR) as srv:
        svc = service(tmp_path, srv.base_url)
        alice = svc.user("alice")
        src = svc.source(alice)
        first = svc.submit(alice, [src])
        cd, deck1 = download(svc, f"/api/sessions/{first['id']}/deck.apkg", alice, tmp_path,
                             "s1.apkg")
        assert cd == f'attachment; filename="session-{first["id"]}-ch14.apkg"'
        cd, weak1 = download(svc, "/api/weak-spots.apkg", alice, tmp_path, "w1.apkg")
        assert cd == 'attachment; filename="weak-spots.apkg"'
        col = Collection(str(tmp_path / "col.anki2"))
        try:
            log = import_apkg(col, deck1)
            assert log.new >= 3  # 2 omissions + 1 contradiction at least
            session_guids = guids(col)
            assert len(session_guids) == log.new == len(set(session_guids))
            # the weak-spot deck holds the same notes: nothing new (Anki's log lists them as
            # "duplicate": already there, left as they are), no second copy of any
            log = import_apkg(col, weak1)
            assert (log.new, log.duplicate, log.conflicting) == (0, len(session_guids), 0)
            assert guids(col) == session_guids
            # a re-download is byte-for-byte the same notes
            _, again = download(svc, "/api/weak-spots.apkg", alice, tmp_path, "w1b.apkg")
            assert import_apkg(col, again).new == 0 and guids(col) == session_guids
            # a second session: the weak-spot deck grows by its notes only, newest first
            second = svc.submit(alice, [src], recall="recall-ch14-again.md", title="again")
            _, deck2 = download(svc, f"/api/sessions/{second['id']}/deck.apkg", alice,
                                tmp_path, "s2.apkg")
            _, weak2 = download(svc, "/api/weak-spots.apkg", alice, tmp_path, "w2.apkg")
            log = import_apkg(col, weak2)
            assert log.new >= 1 and log.duplicate == len(session_guids)
            after = guids(col)
            assert set(session_guids) < set(after) and len(after) == len(set(after))
            # the second session's own deck is now nothing new
            assert import_apkg(col, deck2).new == 0 and guids(col) == after
            cards = rendered(col)
            assert cards and all(q.strip() and a.strip() for _, q, a in cards)
            assert any("Pooling layers have no trainable parameters" in a for _, _, a in cards)
            # the learner's <script> is text on the card, never markup
            assert not any("<script>alert" in q + a for _, q, a in cards)
        finally:
            col.close()


def test_a_note_is_keyed_by_user_session_and_gap_and_a_newer_grade_updates_it(tmp_path):
    """The same gap (ankigen's anchor) keeps its note; a newer grading of it with a changed
    answer updates that note in place."""
    from grader.service import decks

    g1 = decks.Graded(7, 3, "t", "# Notes\n\nPooling learns weights.\n\n🔴 => no: it has none\n"
                      "> Pooling layers have no trainable parameters.\n", 1000.0)
    g2 = decks.Graded(7, 3, "t", "# Notes\n\nPooling learns weights.\n\n🔴 => no: it has none\n"
                      "> Pooling layers have no trainable parameters at all.\n", 2000.0)
    a, b = decks.session_cards(g1), decks.session_cards(g2)
    assert [c.guid for c in a] == [c.guid for c in b] and a[0].fields != b[0].fields
    other_user = decks.session_cards(decks.Graded(8, 3, "t", g1.markdown, 1000.0))
    assert other_user[0].guid != a[0].guid
    col = Collection(str(tmp_path / "col.anki2"))
    try:
        for g, name in ((g1, "a.apkg"), (g2, "b.apkg")):
            (tmp_path / name).write_bytes(decks.package(decks.WEAK_SPOTS, [g]))
        assert import_apkg(col, tmp_path / "a.apkg").new == 1
        log = import_apkg(col, tmp_path / "b.apkg")
        assert (log.new, log.updated) == (0, 1)
        assert len(col.find_notes("")) == 1
    finally:
        col.close()
