"""``firstmotion scenario``: synthetic network data with known focal mechanisms.

Python API::

    from stream.scenario import ScenarioConfig, make_scenario, write_scenario
    sc = make_scenario(ScenarioConfig(n_stations=10, n_events=2, duration_s=120, seed=3))
    paths = write_scenario(sc, "out/")   # miniSEED, stations.xml, velocity_model.txt, truth.*
"""

from stream.scenario.build import Scenario, demo_truth_windows, make_scenario
from stream.scenario.config import ScenarioConfig
from stream.scenario.writers import write_scenario

__all__ = ["Scenario", "ScenarioConfig", "demo_truth_windows", "make_scenario", "write_scenario"]
