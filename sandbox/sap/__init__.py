"""A subset of SAP S/4HANA Cloud: the journal entry SOAP services of the communication
arrangement SAP_COM_0002 (synchronous JournalEntryCreateRequestConfirmation_In, asynchronous
JournalEntryBulkCreationRequest_In), the OData V2 read of posted items
(API_OPLACCTGDOCITEMCUBE_SRV) and the Business Partner API (API_BUSINESS_PARTNER,
SAP_COM_0008) with SAP Gateway's CSRF token.

As SAP does, a refused posting answers HTTP 200 with AccountingDocument 0000000000 and a log
of severity 3; a request the service's schema refuses answers a SOAP Fault with HTTP 500;
bad credentials 401. Unverified details are named where they are modelled: the exact message
numbers and words of the log (F5 102 for a customer not in the company code follows public
sample answers; the others are plausible), the reversal document keeping the request's
DocumentReferenceID, the async service's path and its 202 answer.
"""

SYSTEM = "sap"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SFIN = "http://sap.com/xi/SAPSCORE/SFIN"
