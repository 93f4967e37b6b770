"""The HTTP edge's shared pieces: who may do what, problem bodies, paging cursors."""
