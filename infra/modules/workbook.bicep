// The operations workbook (infra/workbook/contact-messages.workbook.json), shown on the
// Application Insights component. tests/infra checks its queries against shared/observability.py.

param location string
param tags object
param displayName string
param appInsightsId string

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, appInsightsId, 'contact-messages-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    // Lower-cased: the component's Workbooks gallery matches sourceId case-sensitively.
    sourceId: toLower(appInsightsId)
    version: '1.0'
    serializedData: loadTextContent('../workbook/contact-messages.workbook.json')
  }
}

output workbookId string = workbook.id
