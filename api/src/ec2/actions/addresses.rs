//! The address actions: AllocateAddress, AssociateAddress, DisassociateAddress, ReleaseAddress, DescribeAddresses.
