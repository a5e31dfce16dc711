//! Test harness: network namespaces, veth links, real BGP daemons and Ginger processes.
