"""SAP S/4HANA Cloud as o2c's ERP (journal entries, customers): see erp.py."""

from adapters.sap.erp import SapErp

__all__ = ["SapErp"]
