# The two commands of the README:
#   make run    set up .venv and run the default scenario (results and charts under results/)
#   make test   set up .venv with the test tools and run the test suite
SCENARIO ?= scenarios/starter.yaml
PYTEST_ARGS ?=

.PHONY: run test setup reference clean

setup:
	@scripts/setup.sh

run:
	@scripts/setup.sh
	.venv/bin/loyalty-sim run $(SCENARIO)

test:
	@scripts/setup.sh test
	.venv/bin/python -m pytest -n 2 $(PYTEST_ARGS)

reference:
	@scripts/setup.sh
	.venv/bin/loyalty-sim reference --output docs/scenario-reference.md
	.venv/bin/loyalty-sim schema --output docs/scenario.schema.json

clean:
	rm -rf .venv build *.egg-info
