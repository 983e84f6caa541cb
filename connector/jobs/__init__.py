"""The daemon's jobs: thin drivers of the pure core over the ports.

pull         local system → mapping/validation → outbox (cursor moves with the data)
push         outbox → portal → acknowledgements (retries, splitting, isUpdating repair)
reconcile    TraCuuHoSo on a sample of acknowledged dossiers → drift report
housekeeping purge old acknowledged rows
resync       operator-driven re-read of chosen dossiers
"""
