"""The grading service: a thin web layer (FastAPI, Jinja2 pages) over the grader library.

Layout (../shared/STYLE.md, "For the service"): `config.py` settings, `db.py` engine and
migrations, `models.py` tables, `schemas.py` request/response models, `crud.py` queries,
`deps.py` the database session and the current user, `routes/` thin handlers, `jobs.py` the
huey task and the job-row lease, `worker.py` the consumer process, `decks.py` the .apkg
downloads, `server.py` what `grader serve` runs. Needs the `service` extra.
"""
