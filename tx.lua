wrk.method = "POST"
wrk.headers["Authorization"] = "Basic ZGVtby1wYXJ0bmVyQHRlc3NlcmEuZXhhbXBsZTo="
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"grant_type":"urn:ietf:params:oauth:grant-type:token-exchange","token_exchange_data":{"subject_token":"","subject_token_type":"urn:wazzup:oauth:token-type:machine_token","requested_subject":"","scope":"transport"}}'
