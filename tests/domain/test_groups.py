"""Hundreds or thousands of agreements map to a readable number of named tasks."""

from roger_economic.pipeline import groups


def test_2000_agreements_fit_well_under_max_map_length_with_every_agreement_once():
    ids = [f"agr_{i:04d}" for i in range(1, 2001)]
    got = groups(ids)
    assert len(got) == 25  # the default bound; each group pays a fixed validation cost
    assert [a for g in got for a in g["agreements"]] == ids
    assert got[0]["label"] == "agr_0001 … agr_0080 (80)"


def test_a_firm_of_200_agreements_runs_in_groups_of_the_default_size():
    got = groups([f"agr_{i:04d}" for i in range(1, 201)])
    assert [len(g["agreements"]) for g in got] == [50, 50, 50, 50]


def test_very_many_agreements_grow_the_groups_instead_of_the_task_count():
    ids = [f"agr_{i:05d}" for i in range(50_000)]
    got = groups(ids, size=25, max_groups=200)
    assert len(got) == 200 and sum(len(g["agreements"]) for g in got) == 50_000


def test_a_single_agreement_run_is_named_by_the_agreement():
    assert groups(["agr_0042"]) == [{"label": "agr_0042", "agreements": ["agr_0042"]}]
