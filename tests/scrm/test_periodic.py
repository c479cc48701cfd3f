"""Periodic jobs are data; each period starts once however many sweepers run."""

from __future__ import annotations

from scrm import jobs

CALLS: list[dict] = []


def tick(**kwargs) -> None:
    CALLS.append(kwargs)


def test_a_periodic_job_runs_once_per_period_in_process(app):
    CALLS.clear()
    jobs.periodic(
        jobs.PeriodicJob(name="test-tick", func="tests.scrm.test_periodic.tick", every_s=60, kwargs=(("n", 1),))
    )
    try:
        assert "test-tick" in jobs.run_due_periodic(app, now=6000.0)
        assert "test-tick" not in jobs.run_due_periodic(app, now=6030.0)
        assert "test-tick" in jobs.run_due_periodic(app, now=6061.0)
        assert CALLS == [{"n": 1}, {"n": 1}]
    finally:
        jobs._periodic.pop("test-tick")


def test_two_sweepers_on_redis_start_one_job_per_period(committed_app, redis_client):
    from scrm.app import create_app

    other = create_app(committed_app.extensions["scrm"].config)
    jobs.periodic(jobs.PeriodicJob(name="test-tick-redis", func="tests.scrm.test_periodic.tick", every_s=60))
    try:
        started = [jobs.run_due_periodic(app, now=12_000.0) for app in (committed_app, other, committed_app)]
        assert sum("test-tick-redis" in names for names in started) == 1
        queue = committed_app.extensions["scrm"].runner.queue("default")
        assert [job for job in queue.job_ids if "test_tick" in job] == ["periodic-test_tick_redis-200"]
    finally:
        jobs._periodic.pop("test-tick-redis")
        other.extensions["scrm"].db.dispose()
