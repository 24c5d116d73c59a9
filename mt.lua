wrk.method = "POST"
wrk.headers["Authorization"] = "Basic ZGVtby1wYXJ0bmVyQHRlc3NlcmEuZXhhbXBsZTo="
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"grant_type":"client_credentials","client_credentials_data":{"scope":"transport,crm"}}'
