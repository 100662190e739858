"""The model store and the promote gate.

    object_store.py  a directory or S3 (boto3): write-once puts, compare-and-swap, listing
    records.py       the stored records' schemas: manifest, champion pointer, audit entry
    store.py         model rounds (files, then the manifest last), the champion pointer, the audit log
    gate.py          the paired promote decision (docs/apo.md §11)
"""
