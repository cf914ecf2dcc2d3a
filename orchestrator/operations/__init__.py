"""Operations: the pieces commands compose (dump, upload, fetch, restore-and-verify, verify,
prune, sync, rekey, listing), each taking the job and plain values."""
