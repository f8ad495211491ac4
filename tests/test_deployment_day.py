"""A simulated 24 h deployment (rules in virtual time over the plant model): the crew is never
left without power by surprise, and nothing flaps."""

from deployment_day import simulate_day


def test_a_day_on_battery_keeps_the_floor_without_flapping() -> None:
    report = simulate_day(hours=24, step_s=5.0, start_soc=70.0)
    print("\n".join(report.lines()))  # the scenario report (pytest -s shows it)
    assert report.min_soc >= report.floor_soc
    assert report.generator_starts >= 1  # the day needed it, and it came by itself
    assert report.generator_run_s > 3600
    assert report.generator_starts <= 3
    assert max(report.switches.values()) <= 6  # no circuit switched more than 6 times a day
    # least important first (12 V sockets, priority 8), and every restore brings back the
    # group shed last (a stack): never a less important load before a more important one
    assert report.sheds[0][2].startswith("sockets_12v")
    stack: list[str] = []
    for _, what, detail in report.sheds:
        group = detail.split(":")[0]
        if what == "shed":
            stack.append(group)
        else:
            assert stack.pop() == group
    assert report.end_soc > report.min_soc  # the generator brought it back up
