# `make book`: create .venv, install requirements.txt, build the HTML book into _build/html.
# `make test`: lint, then every test: unit tests, notebooks (papermill, nbval), book build, browser.
# `make assignments`: student notebooks and autograders (otter-grader) into _build/assignments/.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: book test lint assignments clean

$(STAMP): requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $(STAMP)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . -W --keep-going
	@echo "The book: $(CURDIR)/_build/html/index.html"

assignments: $(STAMP)
	$(PY) assignments/build.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	VAEBOOK_QUICK=1 $(PY) -m pytest tests notebooks --nbval-lax -p no:cacheprovider -ra --durations=15

clean:
	rm -rf _build
