"""A pytest plugin that turns an exported dataset into one test per reviewer correction.

    pytest -p hitl_client.pytest_plugin --hitl-dataset cases.jsonl --hitl-agent my_agent:decide

No test module is needed: with both options set, the plugin adds one item per case (named
`<dataset file>::<case id>`) to whatever else pytest collects, scored by
`hitl_client.regress` exactly as the `hitl-regress` console script scores it; `-k`, `-x`,
`--junitxml` and the other pytest options apply as usual. Installed, `hitl-client` registers
the plugin through the `pytest11` entry point and `-p` is not needed.
"""

from pathlib import Path

import pytest

from . import regress


def pytest_addoption(parser):
    group = parser.getgroup("hitl", "regression tests from reviewer corrections")
    group.addoption("--hitl-dataset", metavar="FILE.jsonl", help="An exported dataset (generic).")
    group.addoption("--hitl-agent", metavar="MODULE:CALLABLE", help="The agent under test.")
    group.addoption(
        "--hitl-content-threshold",
        type=float,
        default=regress.DEFAULT_CONTENT_THRESHOLD,
        help="How alike corrected and new content must be (0..1).",
    )


class HitlCaseFailed(Exception):
    """A case the agent under test fails, with the scorer's reason."""


class HitlDataset(pytest.File):
    """The dataset file as a collector of its cases."""

    def collect(self):
        try:
            records = regress.load_dataset(self.path)
        except regress.DatasetError as exc:
            raise pytest.UsageError(f"--hitl-dataset: {exc}") from None
        for record in records:
            yield HitlCase.from_parent(self, name=str(record.get("id")), record=record)


class HitlCase(pytest.Item):
    """One exported case, run against the agent and judged by its label's scorer."""

    def __init__(self, *, record, **kwargs):
        super().__init__(**kwargs)
        self.record = record
        self.add_marker(pytest.mark.hitl_case)

    def runtest(self):
        config = self.config
        result = regress.score_case(
            self.record,
            config._hitl_agent,
            regress.Options(content_threshold=config.getoption("hitl_content_threshold")),
        )
        self.user_properties.extend([("label", result.label), ("rule", result.rule)])
        if not result.passed:
            raise HitlCaseFailed(result.reason)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, HitlCaseFailed):
            return f"[{self.record.get('label')}] {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, f"hitl case {self.name} [{self.record.get('label')}]"


def pytest_configure(config):
    config.addinivalue_line("markers", "hitl_case: a case of an exported hitl dataset")
    dataset, agent = config.getoption("hitl_dataset"), config.getoption("hitl_agent")
    if bool(dataset) != bool(agent):
        raise pytest.UsageError("--hitl-dataset and --hitl-agent go together")
    if agent:
        try:
            config._hitl_agent = regress.load_callable(agent)
        except regress.AgentError as exc:
            raise pytest.UsageError(f"--hitl-agent: {exc}") from None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
    # First, so that -k and -m deselect among the cases like among any other test.
    dataset = config.getoption("hitl_dataset")
    if not dataset:
        return
    path = Path(dataset).resolve()
    if not path.is_file():
        raise pytest.UsageError(f"--hitl-dataset: no file {dataset}")
    items.extend(HitlDataset.from_parent(session, path=path).collect())
