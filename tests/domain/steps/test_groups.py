"""Hundreds or thousands of agreements map to a readable number of named tasks."""

from roger_economic.pipeline import groups


def test_2000_agreements_fit_well_under_max_map_length_with_every_agreement_once():
    ids = [f"agr_{i:04d}" for i in range(1, 2001)]
    got = groups(ids)
    assert len(got) == 8  # the bound: groups grow to 250 rather than become 20 task groups of 100
    assert [a for g in got for a in g["agreements"]] == ids
    assert got[0]["label"] == "agr_0001 … agr_0250 (250)"


def test_a_firm_of_200_agreements_runs_in_groups_of_the_default_size():
    got = groups([f"agr_{i:04d}" for i in range(1, 201)])
    assert [len(g["agreements"]) for g in got] == [100, 100]


def test_groups_are_even_so_they_finish_together():
    ids = [f"agr_{i:04d}" for i in range(1, 251)]
    got = groups(ids)
    assert [len(g["agreements"]) for g in got] == [84, 83, 83]
    assert [a for g in got for a in g["agreements"]] == ids


def test_beyond_the_bound_groups_grow_instead_of_their_number():
    ids = [f"agr_{i:04d}" for i in range(1, 5001)]
    got = groups(ids)
    assert len(got) == 8 and {len(g["agreements"]) for g in got} == {625}


def test_very_many_agreements_grow_the_groups_instead_of_the_task_count():
    ids = [f"agr_{i:05d}" for i in range(50_000)]
    got = groups(ids, size=25, max_groups=200)
    assert len(got) == 200 and sum(len(g["agreements"]) for g in got) == 50_000


def test_a_single_agreement_run_is_named_by_the_agreement():
    assert groups(["agr_0042"]) == [{"label": "agr_0042", "agreements": ["agr_0042"]}]


def test_no_agreements_no_groups():
    assert groups([]) == []


def test_the_bound_follows_the_variable_unless_the_caller_names_one(monkeypatch):
    ids = [f"agr_{i:04d}" for i in range(1, 2001)]
    monkeypatch.setenv("ROGER_ECONOMIC_MAX_GROUPS", "4")
    assert [len(g["agreements"]) for g in groups(ids)] == [500] * 4
    assert len(groups(ids, max_groups=2)) == 2


def test_a_bound_below_one_is_a_typo_that_stops_the_dag_file():
    import pytest

    from roger_economic.settings import Environment

    with pytest.raises(ValueError, match="ROGER_ECONOMIC_MAX_GROUPS must be at least 1"):
        Environment.read({"ROGER_ECONOMIC_MAX_GROUPS": "0"})
