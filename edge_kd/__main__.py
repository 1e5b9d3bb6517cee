from edge_kd.cli import run

run()
