"""The bench test: a declarative plan (a TOML file) of steps, run against one unit.

A plan lists steps; each names a measuring kind with its parameters and puts limits on the
measurements that kind makes. The code only knows how to measure; what to measure, in which
order, and what passes is the plan's business.

    plan.py    the plan file, loaded and checked (Plan, DEFAULT_PLAN)
    kinds.py   the measuring kinds (KINDS) and the Station they measure with
    run.py     a plan run against one unit (run_plan)
    report.py  the results (BenchReport), as JUnit XML and JSON (write_reports)

    plan = Plan.load(DEFAULT_PLAN)
    report = run_plan(plan, Station(client, fixture))
    report.passed, report.steps[0].measurements

Some kinds need the station's fixture instrument (the calibration bath's test fixture:
photodiode, accelerometer, reference radio); a plan that has them needs --fixture.
"""
