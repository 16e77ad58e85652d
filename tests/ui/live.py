"""What a browser sees when a page's live parts refresh: only the page's fragments rerun.

In a browser, a ``@st.fragment(run_every=N)`` reruns on its own every N s and redraws only what it draws;
everything else stays as it was drawn at page load (that is how a form outside the fragment froze).
AppTest always reruns the whole script, so `refresh` asks its script runner for a fragment-only run of
every fragment the page registered, as the browser's timers do. The tree afterwards holds exactly what that
refresh redrew: something missing from it is frozen in the browser.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from unittest import mock

from streamlit.runtime.scriptrunner_utils.script_requests import RerunData, ScriptRequests
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1 import app_test as _app_test
from streamlit.testing.v1.local_script_runner import LocalScriptRunner


def fragment_ids(at: AppTest) -> list[str]:
    return list(at._fragment_storage._fragments)  # noqa: SLF001 - AppTest keeps them across runs


def refresh(at: AppTest, timeout: float = 60) -> AppTest:
    """Run only the page's fragments (what their ``run_every`` timers do); ``at`` then shows what they drew."""
    ids = fragment_ids(at)
    assert ids, "the page has no live (fragment) part"

    class FragmentRun(LocalScriptRunner):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._requests = ScriptRequests()  # drop the full run every new runner starts with

        def request_rerun(self, rerun_data: RerunData) -> bool:
            return super().request_rerun(
                dataclasses.replace(rerun_data, fragment_id_queue=list(ids), is_auto_rerun=True)
            )

    with mock.patch.object(_app_test, "LocalScriptRunner", FragmentRun):
        at.run(timeout=timeout)
    return at
