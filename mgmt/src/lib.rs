//! vpcgate management plane.
