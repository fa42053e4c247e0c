"""Code that runs inside the guest (copied in over 9p at run time); its modules import each other by
plain name, as scripts in /mnt/host/guest. Pure modules (queries, udevlog) are importable on the host too."""
