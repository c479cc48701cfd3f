"""WSGI entry point for gunicorn: `gunicorn 'scrm.wsgi:app'`."""

import gc

from scrm.app import create_app

app = create_app()

# What start-up built lives as long as the worker: moved out of the collector's reach, a full collection walks
# only what requests left behind, instead of stopping every thread for the ~110,000 objects of the app itself.
gc.freeze()
