"""RQ jobs run by `sespcl worker`: speech renders and call-event recording."""
