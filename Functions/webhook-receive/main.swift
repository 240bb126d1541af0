import DravenCore

CGI.serve(WebhookReceive.self)
