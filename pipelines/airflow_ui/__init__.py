"""What the Airflow UI shows of a stress-test run beyond Airflow's own pages: extra links and the report.

Loaded by the plugin in ``plugins/`` inside Airflow's API server; imports Airflow's core modules, so
nothing outside the plugin and its tests imports this package.
"""
